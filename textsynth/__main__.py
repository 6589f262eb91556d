"""`python -m textsynth ...`: the same command line as the `textsynth` console script."""
from textsynth.cli import main

if __name__ == "__main__":
    main()
