"""A process pool over independent tasks with bounded work in flight, and a stderr progress bar.

Used by `import`, `export` and `verify`: results come back as tasks finish (`run_tasks`); at most
2 x workers tasks are queued, so memory stays bounded by what those tasks hold. workers=1 runs
in this process (no pool), which is also what the serial code paths and tests use.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_tasks(fn: Callable[[Any], Any], tasks: Iterable[Any], workers: int) -> Iterator[tuple[Any, Any]]:
    """(task, fn(task)) for every task, in completion order; the first exception is raised after
    cancelling what has not started. fn and tasks must pickle (workers are spawned, not forked)."""
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, fn(task)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork: pyarrow/S3 threads in the parent must not leak
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
        pending: dict[Future, Any] = {}
        queue = iter(tasks)
        try:
            while True:
                while len(pending) < 2 * workers:
                    task = next(queue, None)
                    if task is None:
                        break
                    pending[pool.submit(fn, task)] = task
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    yield task, fut.result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


class Progress:
    """`with Progress(label, total, done) as advance: advance(n)`; a rich bar on stderr only when
    stderr is a terminal (pipes and tests stay clean), or when enabled=True is forced."""

    def __init__(self, label: str, total: int, done: int = 0, enabled: bool | None = None) -> None:
        self.label, self.total, self.done = label, total, done
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True))
        self._bar.__enter__()
        t0, start = time.perf_counter(), self.done
        task = self._bar.add_task(self.label, total=self.total, completed=self.done, rate="")

        def advance(n: int) -> None:
            self.done += n
            rate = (self.done - start) / max(time.perf_counter() - t0, 1e-9)
            self._bar.update(task, completed=self.done, rate=f"{rate:,.0f}/s")

        return advance

    def __exit__(self, *exc: Any) -> bool:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False
