"""Generate a dataset with Ray: `generate(Plan(...))` renders a recipe into sharded Arrow files.

plan.py: what a run produces; driver.py: `generate`, top to bottom; worker.py: the ShardWorker that
renders shards; dispatch.py: ShardWorker actors fed one shard at a time; survey.py: what an output
folder already holds; output.py: --out resolved and checked; cluster.py: Ray and node visibility;
report.py: the run's report and progress bar.
"""
from .driver import generate
from .plan import DEFAULT_SHARD_SIZE, Plan
from .report import Report

__all__ = ["DEFAULT_SHARD_SIZE", "Plan", "Report", "generate"]
