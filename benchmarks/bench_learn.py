"""Does the SRNet trainer learn the edit? A reduced-width SRNet trained on CPU for a fixed CPU budget.

Renders a small dataset in-process (no Ray), then trains with the trainer's defaults (or the
settings given by flags) in chunks; after each chunk it evaluates the generator on a held-out set
and prints one JSON line: CPU-seconds spent training, step, the model's figures, the identity
baseline (i_s copied as o_f) and the gain over it. The last line is a summary.
    python benchmarks/bench_learn.py [--budget-cpu-min 30] [--threads 1] [--width 0.25] [--gan lsgan] ...
The budget counts process CPU time inside training only (dataset rendering and evaluation excluded).
Runs without VGG19 weights unless --vgg-weights is given (the perceptual/style terms need them).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from textsynth.local_dataset import build_dataset
from textsynth.srnet.evaluate import evaluate
from textsynth.srnet.infer import load_generator
from textsynth.srnet.losses import LossConfig
from textsynth.srnet.model import Generator, SRNetConfig
from textsynth.srnet.train import TrainConfig, train


def dataset(work: Path, name: str, n: int, shards: int, pipeline: str, seed: int) -> str:
    root = work / f"{name}-{pipeline}-n{n}-seed{seed}"
    if not (root / "textsynth.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        build_dataset(root, n, shards=shards, pipeline=pipeline, seed=seed)
    return str(root)


def rounded(d: dict) -> dict:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in d.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-cpu-min", type=float, default=30.0, help="training CPU-minutes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--width", type=float, default=0.25, help="SRNet width multiplier (1.0 = the paper's)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--eval-every", type=int, default=250, help="steps between evaluations")
    ap.add_argument("--train-samples", type=int, default=4000)
    ap.add_argument("--val-samples", type=int, default=128)
    ap.add_argument("--pipeline", default="en")
    ap.add_argument("--gan", default=None, help="override loss.gan")
    ap.add_argument("--g-every", type=int, default=None, help="override loss.g_every")
    ap.add_argument("--lr", type=float, default=None, help="override the learning rate")
    ap.add_argument("--vgg-weights", default=None)
    ap.add_argument("--work", default=os.environ.get("BENCH_LEARN_DIR", "/tmp/bench-learn"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_ds = dataset(work, "train", args.train_samples, 8, args.pipeline, 1)
    val_ds = dataset(work, "val", args.val_samples, 1, args.pipeline, 2)
    base = TrainConfig()
    loss = LossConfig(**{**base.loss.to_dict(), **{k: v for k, v in (("gan", args.gan), ("g_every", args.g_every))
                                                    if v is not None}})
    cfg = TrainConfig(model=SRNetConfig(width=args.width), loss=loss, batch_size=args.batch_size, num_workers=0,
                      device="cpu", lr=args.lr or base.lr, seed=0, log_every=50, ckpt_every=10**8,
                      sample_every=10**8, val_every=10**8, keep_checkpoints=1)
    run = work / f"run-{int(time.time())}"
    setting = {"width": args.width, "batch_size": args.batch_size, "gan": loss.gan, "g_every": loss.g_every,
               "lr": cfg.lr, "perceptual": bool(args.vgg_weights), "pipeline": args.pipeline,
               "train_samples": args.train_samples, "val_samples": args.val_samples, "threads": args.threads,
               "budget_cpu_s": args.budget_cpu_min * 60}
    print(json.dumps({"event": "start", **setting, "render_s": round(time.perf_counter() - t0, 1)}), flush=True)

    def report(gen, step: int, cpu: float) -> dict:
        table = evaluate(gen, val_ds, batch_size=16, height=cfg.height, device="cpu")
        line = {"event": "eval", "step": step, "train_cpu_s": round(cpu, 1), "samples_seen": step * cfg.batch_size,
                "model": rounded(table["model"]), "identity": rounded(table["identity"]),
                "gain": rounded(table["gain"])}
        print(json.dumps(line), flush=True)
        return line

    torch.manual_seed(cfg.seed)
    curve = [report(Generator(cfg.model), 0, 0.0)]
    budget, cpu, step = args.budget_cpu_min * 60, 0.0, 0
    while cpu < budget:
        per_step = cpu / step if step else None
        chunk = args.eval_every if per_step is None else max(1, min(args.eval_every, int((budget - cpu) / per_step)))
        c0 = time.process_time()
        train(train_ds, run, cfg, vgg_weights=args.vgg_weights, perceptual=bool(args.vgg_weights),
              max_steps=chunk, log=lambda s: None)
        cpu += time.process_time() - c0
        step += chunk
        curve.append(report(load_generator(run), step, cpu))
    best = max(curve, key=lambda r: r["model"]["psnr"] or -1)
    print(json.dumps({"event": "summary", **setting, "steps": step, "train_cpu_s": round(cpu, 1),
                      "wall_s": round(time.perf_counter() - t0, 1),
                      "identity_psnr": curve[-1]["identity"]["psnr"], "final_psnr": curve[-1]["model"]["psnr"],
                      "best_psnr": best["model"]["psnr"], "best_step": best["step"],
                      "beats_identity": any((r["gain"]["psnr_db"] or -1) > 0 for r in curve)}), flush=True)


if __name__ == "__main__":
    main()
