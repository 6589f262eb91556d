"""Thin entry for `python cli.py ...` from a source checkout; the command line lives in textsynth/cli.py."""
from textsynth.cli import main

if __name__ == "__main__":
    main()
