"""Click commands, one module each; textsynth/cli.py registers them."""
