"""Which GAN settings train the tiny SRNet best on CPU: the measurement behind the trainer's defaults.

Trains the same tiny model (width 0.125) on the same small dataset for N steps per setting and prints
JSON: the last logged losses, the validation table (model and identity baseline), and whether the discriminators
saturated (loss near 0: no useful gradient) or froze (the port's 4.6152 plateau).
    python benchmarks/bench_gan.py [--steps 300] [--samples 96]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from textsynth.local_dataset import build_dataset
from textsynth.srnet.losses import LossConfig
from textsynth.srnet.model import SRNetConfig
from textsynth.srnet.evaluate import flat
from textsynth.srnet.train import TrainConfig, train, validate

SETTINGS = {
    "bce_g1": dict(gan="bce", g_every=1),
    "bce_g2": dict(gan="bce", g_every=2),
    "hinge_g1": dict(gan="hinge", g_every=1),
    "lsgan_g1": dict(gan="lsgan", g_every=1),
    "wgan_g2": dict(gan="wgan", g_every=2),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--samples", type=int, default=96)
    args = ap.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench-gan-"))
    build_dataset(work / "train", args.samples, shards=2, pipeline="smoke", seed=1)
    build_dataset(work / "val", 32, shards=1, pipeline="smoke", seed=2)
    results = {}
    for name, loss in SETTINGS.items():
        cfg = TrainConfig(model=SRNetConfig(width=0.125), loss=LossConfig(**loss), batch_size=8, num_workers=0,
                          device="cpu", log_every=25, ckpt_every=10_000, sample_every=10_000, val_every=10_000,
                          steps=args.steps, lr=2e-4, seed=0, val_batches=4)
        run = work / name
        t0 = time.perf_counter()
        last = train(str(work / "train"), run, cfg, max_steps=args.steps, log=lambda s: None, perceptual=False)
        recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        from textsynth.srnet.infer import load_generator

        gen = load_generator(run)
        val = flat(validate(gen, str(work / "val"), cfg, torch.device("cpu"), None))
        d_late = [r["d_f"] for r in recs[len(recs) // 2:]]
        results[name] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "last": {k: round(v, 4) for k, v in last.items() if isinstance(v, float) and k != "lr"},
            "val": {k: round(v, 4) if isinstance(v, float) else v for k, v in val.items()},
            "d_f_second_half_min": round(min(d_late), 4), "d_f_second_half_max": round(max(d_late), 4),
        }
        print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps({"benchmark": "gan_settings", "steps": args.steps, "results": results}, indent=2))


if __name__ == "__main__":
    main()
