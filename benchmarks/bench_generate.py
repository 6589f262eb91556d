"""End-to-end generation through Ray against the same work in-process; bytes per sample per encoding.

Prints JSON. All runs happen side by side in one invocation (the machine is shared and noisy):
  - in-process: one ShardWorker renders every shard, one core, no Ray;
  - Ray with a 1-CPU and a 2-CPU local cluster (cluster start reported separately);
  - each encoding's bytes per sample on the same rendered samples.
Run it inside a loopback-only namespace on these machines:
  unshare -rn sh -c 'ip link set lo up; exec .venv/bin/python benchmarks/bench_generate.py'
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402

from textsynth import recipes  # noqa: E402
from textsynth.generate import Plan, generate  # noqa: E402
from textsynth.generate.worker import ShardWorker  # noqa: E402
from textsynth.shards.encodings import ENCODINGS  # noqa: E402
from textsynth.shards.writer import ShardWriter  # noqa: E402
from textsynth.synth.synthesizer import Pools, Synthesizer  # noqa: E402


def in_process(cfg, count: int, shard_size: int, out: str) -> dict:
    """The pipeline's per-shard work run serially in this process (pool build included, like a worker)."""
    plan = Plan(out=out, count=count, cfg=cfg, shard_size=shard_size)
    w0, c0 = time.perf_counter(), time.process_time()
    worker = ShardWorker(plan, Pools.from_config(cfg), out)
    for k in range(plan.num_shards):
        worker.render_shard(k)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"samples": count, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "samples_per_s": round(count / wall, 1)}


def through_ray(cfg, count: int, shard_size: int, cpus: int, out: str) -> dict:
    tmp = tempfile.mkdtemp(prefix="tsrb-")
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, _temp_dir=tmp, logging_level="ERROR")
    start_s = time.perf_counter() - t0
    try:
        _, report = generate(Plan(out=out, count=count, cfg=cfg, shard_size=shard_size), progress=False)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    r = report.to_dict()
    return {"cpus": cpus, "samples": count, "cluster_start_s": round(start_s, 2), "wall_s": r["wall_s"],
            "task_cpu_s": r["task_cpu_s"], "samples_per_s": r["samples_per_s"],
            "worker_rss_mb_first_last_shard": r["worker_rss_mb"], "driver_rss_mb": r["driver_rss_mb"]}


def encoding_sizes(cfg, n: int, out: str) -> dict:
    syn = Synthesizer(cfg)
    samples = [syn.sample(i) for i in range(n)]
    sizes = {}
    for enc in ENCODINGS:
        c0 = time.process_time()
        with ShardWriter(os.path.join(out, f"enc-{enc}.arrow"), encoding=enc) as w:
            for s in samples:
                w.write(s)
            info = w.close()
        sizes[enc] = {"bytes_per_sample": round(info.bytes / n), "encode_cpu_ms_per_sample":
                      round((time.process_time() - c0) / n * 1000, 3)}
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=8000)
    # one shard is one task: the run ends when the slowest worker's last shard does, so small runs
    # need small shards to measure steady-state scaling (a 1M-sample run has ~1000 shards anyway)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--pipeline", default="en")
    args = ap.parse_args()
    cfg = recipes.load(pipeline=args.pipeline, seed=1)
    work = tempfile.mkdtemp(prefix="bench-gen-")
    try:
        runs = {}
        for name, fn in (("in_process_1core", lambda o: in_process(cfg, args.count, args.shard_size, o)),
                         ("ray_1cpu", lambda o: through_ray(cfg, args.count, args.shard_size, 1, o)),
                         ("ray_2cpu", lambda o: through_ray(cfg, args.count, args.shard_size, 2, o))):
            out = os.path.join(work, name)
            runs[name] = fn(out)
            shutil.rmtree(out, ignore_errors=True)
        base = runs["in_process_1core"]["samples_per_s"]
        result = {
            "benchmark": "generate", "pipeline": args.pipeline, "count": args.count, "shard_size": args.shard_size,
            "runs": runs,
            "ray_1cpu_vs_in_process": round(runs["ray_1cpu"]["samples_per_s"] / base, 3),
            "ray_2cpu_vs_1cpu": round(runs["ray_2cpu"]["samples_per_s"] / runs["ray_1cpu"]["samples_per_s"], 3),
            "encodings": encoding_sizes(cfg, 300, work),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
