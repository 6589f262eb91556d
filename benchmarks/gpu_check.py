"""The GPU check, one script, one JSON, under 8 minutes on one GPU:

1. SRNet D+G step throughput (bf16 autocast, channels_last, VGG19 terms with random weights) and peak
   memory at batch 8/64 x width 128/256, with torch.compile off and on; compiled steps are timed after
   warm-up and must not recompile (the count of newly compiled frames during timing is reported).
2. Two minutes of real training with the trainer and the loader on the demo data (batch widths
   bucketed to multiples of 64 so shapes repeat): samples/s, GPU utilisation (torch.cuda.utilization,
   when pynvml is installed), and the loader alone for loader headroom = loader rate / training rate.

    python benchmarks/gpu_check.py [--data data/demo] [--out DIR]        # on a CUDA machine
    python benchmarks/gpu_check.py --dry-run                             # tiny sizes on CPU (smoke test)

Without --data (or when it does not exist) 4,000 `en` samples are rendered in-process first.
Progress goes to stderr; the JSON is the only thing on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from textsynth.local_dataset import build_dataset
from textsynth.sample import SRNET_KEYS
from textsynth.srnet.losses import LossConfig, VGG19Features
from textsynth.srnet.model import SRNetConfig
from textsynth.srnet.step import make_optimizers, train_step
from textsynth.srnet.throughput import synthetic_batch
from textsynth.srnet.train import TrainConfig, build_models, train

KEYS = SRNET_KEYS


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def compiled_frames() -> int:
    try:
        from torch._dynamo.utils import counters
        return int(sum(counters["frames"].values()))
    except Exception:  # noqa: BLE001 - dynamo internals differ between versions
        return -1


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def step_figures(dev: torch.device, batch: int, width: int, compiled: bool, width_mult: float, steps: int,
                 warmup: int) -> dict:
    """Samples/s and peak memory of full D+G steps on a fixed-shape batch."""
    cuda = dev.type == "cuda"
    torch.manual_seed(0)
    gen, d_b, d_f = build_models(SRNetConfig(width=width_mult), dev, channels_last=cuda)
    opt_g, opt_d = make_optimizers(gen, d_b, d_f)
    if compiled:
        gen, d_b, d_f = (torch.compile(m, dynamic=False) for m in (gen, d_b, d_f))
    vgg = VGG19Features().to(dev)
    data = {k: (v.pin_memory() if cuda else v) for k, v in synthetic_batch(batch, 64, width).items()}
    cfg = LossConfig(g_every=1)
    amp = torch.bfloat16 if cuda else None
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for s in range(warmup):
        train_step(gen, d_b, d_f, opt_g, opt_d, data, cfg, vgg, step=s, channels_last=cuda, autocast_dtype=amp,
                   as_tensors=True)
    sync(dev)
    warm_s = time.perf_counter() - t0
    frames = compiled_frames()
    t0 = time.perf_counter()
    for s in range(steps):
        res = train_step(gen, d_b, d_f, opt_g, opt_d, data, cfg, vgg, step=s, channels_last=cuda,
                         autocast_dtype=amp, as_tensors=True)
    sync(dev)
    dt = time.perf_counter() - t0
    finite = bool(torch.isfinite(res["values"]).all())
    return {"batch": batch, "height": 64, "width": width, "compile": compiled, "bf16": amp is not None,
            "samples_per_s": round(steps * batch / dt, 1), "ms_per_step": round(1000 * dt / steps, 1),
            "warmup_s": round(warm_s, 1), "recompiles_while_timed": (compiled_frames() - frames) if compiled else 0,
            "peak_mem_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if cuda else None,
            "losses_finite": finite}


class Utilisation(threading.Thread):
    """Samples torch.cuda.utilization() once a second (None when pynvml is missing)."""

    def __init__(self, dev: torch.device) -> None:
        super().__init__(daemon=True)
        self.dev, self.samples, self.stop = dev, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self.samples.append(float(torch.cuda.utilization(self.dev)))
            except Exception:  # noqa: BLE001 - no pynvml / no NVML
                return

    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def loader_rate(data: str, batch: int, workers: int, seconds: float, multiple: int) -> dict:
    from textsynth.loading import make_loader

    loader = make_loader(data, batch_size=batch, keys=KEYS, num_workers=workers, seed=0, drop_last=True,
                         multiple=multiple)
    n, t0, first = 0, time.perf_counter(), None
    for epoch in range(1000):
        loader.set_epoch(epoch)
        for b in loader:
            if first is None:
                first, t0 = time.perf_counter() - t0, time.perf_counter()
                continue
            n += b["i_s"].shape[0]
            if time.perf_counter() - t0 >= seconds:
                break
        else:
            continue
        break
    dt = time.perf_counter() - t0
    return {"workers": workers, "samples_per_s": round(n / max(dt, 1e-9), 1), "first_batch_s": round(first or 0, 2)}


def real_training(data: str, dev: torch.device, args, work: Path) -> dict:
    """The trainer itself (loader, DDP-ready loop, checkpoints) for a fixed wall time."""
    vgg_file = work / "vgg19-random.safetensors"  # the objective's full cost; weights do not matter here
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file({f"features.{k}": v.contiguous() for k, v in VGG19Features().features.state_dict().items()},
              str(vgg_file))
    cfg = TrainConfig(model=SRNetConfig(width=args.model_width), batch_size=args.train_batch,
                      num_workers=args.workers, device=str(dev), compile=args.train_compile,
                      width_multiple=64, log_every=1 if args.dry_run else 10, ckpt_every=10**9, sample_every=10**9,
                      val_every=10**9,
                      steps=10**9)
    import shutil

    shutil.rmtree(work / "run", ignore_errors=True)  # this script's own run folder: a fresh run each time
    util = Utilisation(dev) if dev.type == "cuda" else None
    if util:
        util.start()
    records: list[dict] = []
    t0 = time.perf_counter()
    train(data, work / "run", cfg, vgg_weights=str(vgg_file), max_seconds=args.train_seconds,
          log=lambda s: say(s[:160]))
    wall = time.perf_counter() - t0
    if util:
        util.stop.set()
    log_file = work / "run" / "log.jsonl"
    for line in (log_file.read_text().splitlines() if log_file.is_file() else []):
        records.append(json.loads(line))
    steady = records[len(records) // 4:] or records  # after warm-up (first compile, worker start)
    rate = sum(r["samples_per_s"] for r in steady) / max(len(steady), 1)
    return {"seconds": round(wall, 1), "steps": records[-1]["step"] if records else 0, "batch": cfg.batch_size,
            "workers": cfg.num_workers, "compile": cfg.compile, "samples_per_s": round(rate, 1),
            "gpu_utilisation_pct": util.mean() if util else None,
            "last_losses": {k: round(v, 4) for k, v in (records[-1] if records else {}).items()
                            if k in ("d_b", "d_f", "g_total", "f_l1", "f_style")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/demo")
    ap.add_argument("--out", default=os.environ.get("OUT", tempfile.gettempdir() + "/gpu-check"))
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU: checks the script, measures nothing")
    ap.add_argument("--train-seconds", type=float, default=120.0)
    # 270 s for rendering and the step grid, then at most one config running over (a compile, ~1 min),
    # 120 s of training, 15 s of loader and start-up: under 8 minutes in all
    ap.add_argument("--budget-s", type=float, default=270.0, help="skip remaining step configs past this")
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.dry_run:
        dev = torch.device("cpu")
        args.model_width, args.train_batch, args.workers, args.train_compile = 0.125, 4, 0, False
        args.train_seconds = min(args.train_seconds, 1.5)
        grid = [(2, 32, False), (2, 64, False)]
        steps, warmup, n_render = 1, 1, 32
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run this on a GPU machine (or --dry-run to check the script on CPU)")
        dev = torch.device("cuda", torch.cuda.current_device())
        torch.backends.cudnn.benchmark = True
        args.model_width, args.train_batch, args.workers, args.train_compile = 1.0, 64, 8, False
        grid = [(b, w, c) for c in (False, True) for b in (8, 64) for w in (128, 256)]
        steps, warmup, n_render = 10, 3, 4000
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (dry run)",
                    "torch": torch.__version__, "cuda": torch.version.cuda, "steps": []}

    data = args.data
    if not Path(data, "textsynth.json").is_file():
        data = str(work / "demo-data")
        if not Path(data, "textsynth.json").is_file():
            say(f"rendering {n_render} samples into {data}")
            build_dataset(data, n_render, shards=8 if n_render >= 8 else 1, pipeline="en", seed=0)
    result["data"] = data

    for batch, width, compiled in grid:
        if time.perf_counter() - t_start > args.budget_s:
            result["steps"].append({"batch": batch, "width": width, "compile": compiled, "skipped": "time budget"})
            continue
        try:
            fig = step_figures(dev, batch, width, compiled, args.model_width, steps, warmup)
        except Exception as e:  # noqa: BLE001 - one failing config (e.g. a compile error) must not end the check
            fig = {"batch": batch, "width": width, "compile": compiled, "error": f"{type(e).__name__}: {e}"[:500]}
        say(json.dumps(fig))
        result["steps"].append(fig)

    result["train"] = real_training(data, dev, args, work)
    result["loader"] = loader_rate(data, args.train_batch, args.workers, 2.0 if args.dry_run else 15.0, 64)
    tr = result["train"]["samples_per_s"]
    result["loader_headroom"] = round(result["loader"]["samples_per_s"] / tr, 2) if tr else None
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
