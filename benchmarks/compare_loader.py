"""Loader throughput of this checkout against another one (e.g. the commit before a change), side by side.

    git worktree add /tmp/base <commit>
    python benchmarks/compare_loader.py --base /tmp/base [--rounds 3] [--samples 2000] [--workers 0,1]

Each checkout renders its own copy of the same samples (same recipe and seed, in its own shard format)
once, under --cache. Then, for --rounds rounds, bench_loader.py of each checkout runs in turn (base,
this, base, this, ... so both see the same machine load) with PYTHONPATH pointing at that checkout.
Prints one JSON document: every run's figures, the median samples per CPU-second and samples/s per
(fit, verify, workers) for each checkout, and this/base ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


def _env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def build(checkout: Path, cache: Path, samples: int, shards: int, pipeline: str) -> str:
    """The checkout's own dataset of `samples` rendered samples (built once, cached)."""
    code = ("import sys\ntry:\n    from textsynth.local_dataset import cached_dataset\n"
            "except ImportError:  # a checkout from before the loading package\n"
            "    from textsynth.loader_testing import cached_dataset\n"
            f"print(cached_dataset({samples}, {shards}, 'lz4', {pipeline!r}, cache_dir=sys.argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, str(cache)], env=_env(checkout), cwd=checkout,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def bench(checkout: Path, data: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(checkout / "benchmarks" / "bench_loader.py"), "--data", data, "--no-png",
           "--workers", args.workers, "--fits", args.fits, "--verify", args.verify, "--batches", str(args.batches),
           "--memory-samples", str(args.memory_samples), "--memory-workers", str(args.memory_workers)]
    out = subprocess.run(cmd, env=_env(checkout), cwd=checkout, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def _figures(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    out = {}
    for run in report["runs"]:
        for row in run["per_workers"]:
            key = f"fit={run['fit']} verify={run['verify']} workers={row['workers']}"
            out[key] = {"samples_per_cpu_s": row["arrow_samples_per_cpu_s"], "samples_per_s": row["arrow_samples_per_s"]}
    mem = report.get("memory")
    if mem:
        key = f"steady state, {mem['workers']} workers, {mem['samples']} samples"
        out[key] = {"samples_per_cpu_s": round(1e3 / mem["cpu_ms_per_sample"], 1), "samples_per_s": mem["samples_per_s"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the other checkout (a git worktree of the earlier commit)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--pipeline", default="en")
    ap.add_argument("--workers", default="0,1")
    ap.add_argument("--fits", default="resize")
    ap.add_argument("--verify", default="once,always")
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--memory-samples", type=int, default=20000)
    ap.add_argument("--memory-workers", type=int, default=1)
    ap.add_argument("--cache", default="/tmp/textsynth-compare")
    args = ap.parse_args()

    checkouts = {"base": Path(args.base).resolve(), "this": HERE}
    data = {name: build(path, Path(args.cache) / name, args.samples, args.shards, args.pipeline)
            for name, path in checkouts.items()}
    runs: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in checkouts}
    for r in range(args.rounds):
        for name, path in checkouts.items():
            print(f"round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            runs[name].append(_figures(bench(path, data[name], args)))
    medians = {name: {key: {m: statistics.median(run[key][m] for run in rs) for m in rs[0][key]} for key in rs[0]}
               for name, rs in runs.items()}
    ratios = {key: {f"{m}_this_over_base": round(medians["this"][key][m] / medians["base"][key][m], 3)
                    for m in medians["base"][key]} for key in medians["base"]}
    print(json.dumps({"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                      "checkouts": {k: str(v) for k, v in checkouts.items()}, "datasets": data,
                      "median": medians, "ratio": ratios, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
