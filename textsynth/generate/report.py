"""What a generate run tells its user: a report of the shards it wrote and their timings, and a
progress bar while it runs."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..procstats import rss_mb


@dataclass
class Report:
    """What a run did: shards written now, shards found done, per-node counts, timings."""

    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    nodes: dict[str, int] = field(default_factory=dict)
    worker_rss_mb: dict[int, list[float]] = field(default_factory=dict)  # pid -> RSS after each shard
    wall_s: float = 0.0
    task_cpu_s: float = 0.0
    samples: int = 0

    def add(self, result: dict[str, Any]) -> None:
        """Count one worker's result (ShardWorker.render_shard) in."""
        stats = result["stats"]
        self.written.append(result["index"])
        node = stats.get("node", "local")
        self.nodes[node] = self.nodes.get(node, 0) + 1
        self.task_cpu_s += stats["cpu_s"]
        if stats.get("rss_mb") is not None:
            self.worker_rss_mb.setdefault(stats["pid"], []).append(stats["rss_mb"])
        self.samples += result["entry"]["rows"]

    def to_dict(self) -> dict[str, Any]:
        rss = {str(pid): {"first": round(v[0], 1), "last": round(v[-1], 1), "shards": len(v)}
               for pid, v in self.worker_rss_mb.items() if v}
        return {"written": sorted(self.written), "skipped": sorted(self.skipped), "nodes": self.nodes,
                "worker_rss_mb": rss, "driver_rss_mb": round(rss_mb() or 0.0, 1),
                "wall_s": round(self.wall_s, 3), "task_cpu_s": round(self.task_cpu_s, 3), "samples": self.samples,
                "samples_per_s": round(self.samples / self.wall_s, 1) if self.wall_s else None}


class progress_bar:
    """A rich progress bar (samples, samples/s, ETA) on the driver, or nothing; entering it gives the
    function to call with each landed shard's row count."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.enabled = enabled
        self.total = total
        self.done = done

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.p = Progress(TextColumn("generate"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[rate]}"),
                          TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self.p.__enter__()
        self.t0 = time.perf_counter()
        self.start_done = self.done
        self.task = self.p.add_task("generate", total=self.total, completed=self.done, rate="")

        def advance(n: int) -> None:
            self.done += n
            rate = (self.done - self.start_done) / max(time.perf_counter() - self.t0, 1e-9)
            self.p.update(self.task, completed=self.done, rate=f"{rate:,.0f} samples/s")

        return advance

    def __exit__(self, *exc: Any) -> bool:
        if self.enabled:
            self.p.__exit__(*exc)
        return False
