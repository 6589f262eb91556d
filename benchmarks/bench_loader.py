"""Loader throughput and memory benchmark: Arrow+LZ4 shards vs the PNG folder of the same samples.

    python benchmarks/bench_loader.py                      # 2,000 rendered samples, cached under /tmp
    python benchmarks/bench_loader.py --data DIR --workers 0,1,2 --fits resize,auto --out /tmp/bench

Prints one JSON document: per fit mode and worker count, samples/s, MB/s (decoded uint8 image bytes
delivered as collated batches), CPU-ms/sample (main + worker processes, through psutil), samples per CPU
second, the same for the PNG folder (export_srnet layout read with cv2.imread, same sampler and
collate) and the ratios; then a memory check: worker RSS (and its private / anonymous part) at the
start and end of one DataLoader epoch of >= 100k samples, made by chaining epochs 0, 1, 2, ... of the
width-bucketing sampler over the small dataset (every chained epoch is a fresh permutation, so the
workers really do read 100k batch entries; the dataset itself is not 100k samples).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from textsynth.loading import CollateOptions, ShardDataset, ShardLoader, WidthBucketBatchSampler, dataloader_options
from textsynth.local_dataset import cached_dataset
from textsynth.loader_profile import export_png_folder, loader_worker_pids, proc_cpu_seconds, proc_memory, run_profile
from textsynth.sample import IMAGE_KEYS


class ChainedEpochs:
    """A batch sampler yielding epochs first_epoch, first_epoch+1, ... of `base` until `samples` are covered."""

    def __init__(self, base: WidthBucketBatchSampler, samples: int) -> None:
        self.base = base
        self.samples = samples
        self.epochs = -(-samples // max(base.n, 1))

    def __len__(self) -> int:
        return self.epochs * len(self.base)

    def __iter__(self) -> Iterator[np.ndarray]:
        for e in range(self.epochs):
            self.base.set_epoch(e)
            yield from self.base.batches()


def memory_check(root: str, samples: int, workers: int, batch_size: int, fit: str) -> dict[str, Any]:
    ds = ShardDataset(root, IMAGE_KEYS, CollateOptions(height=64, fit=fit), ring_slots=4)
    base = WidthBucketBatchSampler(ds.widths, batch_size, heights=ds.heights, seed=0)
    sampler = ChainedEpochs(base, samples)
    kw = dataloader_options(workers, False, True, 2, None, None, 0)
    loader = ShardLoader(ds, batch_size=None, sampler=sampler, **kw)
    it = iter(loader)
    delivered = 0
    for _ in range(3):
        delivered += len(next(it)["id"])
    pids = loader_worker_pids(it)
    start = {str(p): proc_memory(p) for p in pids}
    main_start = proc_memory(os.getpid())
    cpu0 = time.process_time() + sum(proc_cpu_seconds(p) for p in pids)
    t0 = time.perf_counter()
    samples_window = 0
    end: dict[str, Any] = {}
    total_batches = len(sampler)
    checkpoints = {len(base): "after_first_pass", total_batches // 2: "half_way"}
    mid: dict[str, Any] = {}
    for k, batch in enumerate(it, start=4):
        n = len(batch["id"])
        delivered += n
        samples_window += n
        if k in checkpoints:
            mid[checkpoints[k]] = {str(p): proc_memory(p) for p in pids}
        if k == total_batches - 2:  # measure before the workers are told to stop
            end = {str(p): proc_memory(p) for p in pids}
    seconds = time.perf_counter() - t0
    cpu = time.process_time() + sum(proc_cpu_seconds(p) for p in pids) - cpu0
    main_end = proc_memory(os.getpid())
    mib = 1 << 20

    def summary(d: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
        return {pid: {k: round(v / mib, 1) for k, v in m.items()} for pid, m in d.items()}

    def growth(a: dict[str, Any], b: dict[str, Any], field: str) -> dict[str, float]:
        return {pid: round((b.get(pid, {}).get(field, 0) - m.get(field, 0)) / mib, 1) for pid, m in a.items()}

    first = mid.get("after_first_pass", start)
    return {
        "how": (f"one DataLoader epoch chaining {sampler.epochs} permutations (epochs 0..{sampler.epochs - 1}) of the "
                f"{ds.__len__()}-sample dataset: {delivered} samples delivered; memory read from "
                "psutil memory maps after batch 3, after the first pass over the data, half way, and "
                "just before the last batches; RSS includes the shard files' page-cache pages each worker "
                "has touched through its memory map (shared, bounded by the dataset size)"),
        "samples": delivered, "workers": workers, "fit": fit, "seconds": round(seconds, 2),
        "samples_per_s": round(samples_window / seconds, 1), "cpu_ms_per_sample": round(1e3 * cpu / samples_window, 4),
        "worker_mib_start": summary(start), "worker_mib_after_first_pass": summary(first),
        "worker_mib_half_way": summary(mid.get("half_way", {})), "worker_mib_end": summary(end),
        "worker_rss_growth_mib": growth(start, end, "rss"),
        "worker_rss_growth_after_first_pass_mib": growth(first, end, "rss"),
        "worker_anonymous_growth_mib": growth(start, end, "anonymous"),
        "main_mib_start": {k: round(v / mib, 1) for k, v in main_start.items()},
        "main_mib_end": {k: round(v / mib, 1) for k, v in main_end.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="existing dataset folder (default: render --samples once, cached under /tmp)")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--encoding", default="lz4")
    ap.add_argument("--pipeline", default="en", help="recipe rendered for the default dataset (en: default style)")
    ap.add_argument("--workers", default="0,1,2,4")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--png-batches", type=int, default=25)
    ap.add_argument("--fits", default="resize,auto")
    ap.add_argument("--verify", default="once", help="comma list of once/always")
    ap.add_argument("--no-png", action="store_true")
    ap.add_argument("--memory-samples", type=int, default=100_000)
    ap.add_argument("--memory-workers", type=int, default=2)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    root = args.data or cached_dataset(args.samples, args.shards, args.encoding, args.pipeline)
    png_dir = None
    if not args.no_png:
        png_dir = f"{root.rstrip('/')}-png"
        if not os.path.isdir(os.path.join(png_dir, "i_s")):
            tmp = f"{png_dir}.building-{os.getpid()}"
            export_png_folder(root, tmp, 2000)
            os.replace(tmp, png_dir)
    workers = [int(w) for w in args.workers.split(",")]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    report: dict[str, Any] = {"dataset": root, "png_folder": png_dir, "runs": []}
    for fit in args.fits.split(","):
        for verify in args.verify.split(","):
            log(f"--- fit={fit} verify={verify}")
            r = run_profile(root, workers, args.batch_size, args.batches, 4, IMAGE_KEYS, 64, "cpu", None,
                            not args.no_png, png_dir, 2000, args.png_batches, fit=fit, verify=verify, log=log)
            report["runs"].append({
                "fit": fit, "verify": verify, "loadavg_at_end": r["loadavg_at_end"],
                "per_workers": [{
                    "workers": row["workers"],
                    "arrow_samples_per_s": round(row["arrow"]["samples_per_s"], 1),
                    "arrow_mb_per_s": round(row["arrow"]["mb_per_s"], 1),
                    "arrow_cpu_ms_per_sample": round(row["arrow"]["cpu_ms_per_sample"], 4),
                    "arrow_samples_per_cpu_s": round(row["arrow"]["samples_per_cpu_s"], 1),
                    "png_samples_per_s": round(row["png"]["samples_per_s"], 1) if "png" in row else None,
                    "png_cpu_ms_per_sample": round(row["png"]["cpu_ms_per_sample"], 4) if "png" in row else None,
                    "ratio_samples_per_s": round(row["ratio_samples_per_s"], 2) if "png" in row else None,
                    "ratio_cpu": round(row["ratio_cpu_ms_per_sample"], 2) if "png" in row else None,
                } for row in r["results"]],
                "dataset": r["dataset"],
            })
    if args.memory_samples:
        log(f"--- memory check: {args.memory_samples} samples, {args.memory_workers} workers")
        report["memory"] = memory_check(root, args.memory_samples, args.memory_workers, args.batch_size,
                                        args.fits.split(",")[0])
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
