"""Benchmarks: scripts that print JSON figures; run them as `python -m benchmarks.NAME` from the repository root."""
