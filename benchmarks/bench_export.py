"""Export throughput: the single-process SRNet-folder writer (the export before it went parallel)
against `export_dataset` with 1 and 2 worker processes, side by side in one run on the same dataset.

Prints JSON: samples/s, wall and CPU seconds (this process + reaped worker processes) per variant.
The serial writer (`write_srnet_folder`) does the old export's work plus MOSTEL's txt/ files and
plain labels, so its figure is if anything slightly pessimistic for "before".
  .venv/bin/python benchmarks/bench_export.py [--count 1200] [--shards 8] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from itertools import islice
from pathlib import Path

from textsynth.interop.folder_export import export_dataset
from textsynth.local_dataset import cached_dataset
from textsynth.shards.dataset import Dataset
from textsynth.interop.srnet_folder import write_srnet_folder


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn, count: int) -> dict:
    w0, c0 = time.perf_counter(), _cpu()
    n = fn()
    wall, cpu = time.perf_counter() - w0, _cpu() - c0
    assert n == count, (n, count)
    return {"samples": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "samples_per_s": round(n / wall, 1), "samples_per_cpu_s": round(n / cpu, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1200)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    root = cached_dataset(n=args.count, shards=args.shards, pipeline="smoke")
    tmp = Path(tempfile.mkdtemp(prefix="tsx-bench-"))
    try:
        def serial() -> int:
            ds = Dataset(root)
            try:
                return write_srnet_folder(islice(iter(ds), args.count), tmp / "serial", count=args.count)
            finally:
                ds.close()

        results = {
            "single_process_writer": _timed(serial, args.count),
            "export_workers_1": _timed(lambda: export_dataset(root, str(tmp / "w1"), workers=1, progress=False).count,
                                       args.count),
            f"export_workers_{args.workers}": _timed(
                lambda: export_dataset(root, str(tmp / "wn"), workers=args.workers, progress=False).count, args.count),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = results["single_process_writer"]["samples_per_s"]
    speedup = {k: round(v["samples_per_s"] / base, 2) for k, v in results.items()}
    print(json.dumps({"dataset": root, "count": args.count, "shards": args.shards, "cpus": os.cpu_count(),
                      "loadavg_1m_at_end": round(os.getloadavg()[0], 2), "results": results,
                      "speedup_vs_single_process": speedup}, indent=2))


if __name__ == "__main__":
    main()
