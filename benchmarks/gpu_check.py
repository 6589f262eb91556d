"""One short check for a GPU machine: SRNet D+G step throughput at bf16, peak memory, loader headroom.

Prints JSON (and leaves the profile's JSON/PNG under --out). Meant to finish in a few minutes:
    python benchmarks/gpu_check.py --data DIR [--out OUT] [--workers 4,8]
DIR is a textsynth dataset (e.g. `textsynth generate --out DIR --count 4000 --pipeline en`).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from textsynth.profile import run_profile, write_outputs
from textsynth.srnet.throughput import step_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu-check"))
    ap.add_argument("--workers", default="4,8")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for a GPU machine")
    dev = "cuda"
    os.makedirs(args.out, exist_ok=True)
    result: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "steps": []}
    for batch, width in ((8, 128), (64, 128), (64, 256)):
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        rate = step_rate(dev, batch, 64, width, steps=args.steps, warmup=3)
        result["steps"].append({"batch": batch, "height": 64, "width": width, "bf16": True,
                                "samples_per_s": round(rate, 1), "steps_per_s": round(rate / batch, 2),
                                "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                                "wall_s": round(time.perf_counter() - t0, 1)})
        print(json.dumps(result["steps"][-1]), flush=True)
    workers = [int(w) for w in args.workers.split(",")]
    report = run_profile(args.data, workers=workers, batch_size=64, batches=60, device=dev, model="srnet",
                         png=False, log=lambda s: print(s, flush=True))
    write_outputs(report, os.path.join(args.out, "profile"))
    result["loader"] = [{"workers": r["workers"], "samples_per_s": round(r["arrow"]["samples_per_s"], 1),
                         "cpu_ms_per_sample": round(r["arrow"]["cpu_ms_per_sample"], 3),
                         "headroom": round(r.get("loader_headroom", float("nan")), 2)} for r in report["results"]]
    result["model_step_samples_per_s"] = report.get("model", {}).get("step_samples_per_s")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
