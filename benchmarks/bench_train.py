"""SRNet D+G training-step time: ours (textsynth.srnet.step.train_step) against a re-implementation of
the public PyTorch port (benchmarks/reference_srnet_port.py), side by side in one process.

Prints JSON. Per configuration: one warm-up step of each, then N measured steps interleaved
(ours, port, ours, port, ...) so machine noise hits both alike; reports the median (and min) wall
seconds, CPU seconds (time.process_time, all threads) and samples/s, and ours/port ratios: of the
medians, of the minima, and the median of the per-pair ratios (the machine is shared: other sessions'
processes come and go, so look at all three).
Both steps do D and G updates every iteration with the same loss recipe, including VGG19
perceptual + style losses from a randomly initialised VGG19 (weights do not change the work).
The port is measured at batch 8 only (its recipe); ours at batch 8 and 64.

    python -m benchmarks.bench_train [--steps 3] [--quick] [--threads 2]
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable

import torch


from benchmarks.reference_srnet_port import make_port, port_train_step

from textsynth.sample import IMAGE_CHANNELS, MASK_KEYS
from textsynth.srnet.losses import LossConfig, VGG19Features
from textsynth.srnet.model import Discriminator, Generator, SRNetConfig, count_params
from textsynth.srnet.step import make_optimizers, train_step

KEYS = tuple(IMAGE_CHANNELS.items())


def make_batch(b: int, h: int, w: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g) for k, c in KEYS}
    for k in MASK_KEYS:  # binary like the real thing
        batch[k] = (batch[k] > 200).to(torch.uint8) * 255
    return batch


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def summarise(walls: list[float], cpus: list[float], batch: int) -> dict[str, Any]:
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "samples_per_s": round(batch / wall, 3),
            "wall_s_min": round(min(walls), 3), "samples_per_s_best": round(batch / min(walls), 3),
            "wall_s_all": [round(x, 3) for x in walls], "cpu_s_all": [round(x, 3) for x in cpus]}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="measured steps per configuration (median)")
    ap.add_argument("--quick", action="store_true", help="tiny run: width 0.25 models, small batches, 1 step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", choices=("on", "off"), default="on", help="ours: channels_last memory")
    ap.add_argument("--gan", default="bce", choices=("bce", "lsgan", "hinge", "wgan"))
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    height = 64
    if args.quick:
        width_mult, steps = 0.25, 1
        ours_cfgs = [(2, 64), (2, 128), (4, 64)]
        port_batches = {2}
    else:
        width_mult, steps = 1.0, args.steps
        ours_cfgs = [(8, 128), (8, 256), (64, 128), (64, 256)]
        port_batches = {8}

    cl = args.channels_last == "on"
    cfg = SRNetConfig(width=width_mult)
    gen, d_b, d_f, vgg = Generator(cfg), Discriminator(cfg), Discriminator(cfg), VGG19Features()
    if cl:
        for m in (gen, d_b, d_f, vgg):
            m.to(memory_format=torch.channels_last)
    opt_g, opt_d = make_optimizers(gen, d_b, d_f, lr=1e-4)
    loss_cfg = LossConfig(gan=args.gan, g_every=1)
    port = make_port(width=width_mult)

    out: dict[str, Any] = {
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "height": height, "steps": steps, "statistic": f"median of {steps} measured steps after 1 warm-up step, "
        "ours and port interleaved step by step",
        "step": "D update + G update every iteration, VGG19 perceptual/style (random init) on both",
        "ours": {"width": width_mult, "params_g": count_params(gen), "params_d": count_params(d_b),
                 "channels_last": cl, "optimizer": "Adam fused" if opt_g.defaults.get("fused") else "Adam foreach",
                 "gan": args.gan},
        "port": {"width": width_mult, "params_g": sum(p.numel() for p in port.G.parameters()),
                 "params_d": sum(p.numel() for p in port.D1.parameters())},
        "results": [],
    }
    step_no = [0]

    def ours_step(batch: dict[str, torch.Tensor]) -> None:
        train_step(gen, d_b, d_f, opt_g, opt_d, batch, loss_cfg, vgg, step=step_no[0])
        step_no[0] += 1

    for b, w in ours_cfgs:
        batch = make_batch(b, height, w)
        with_port = b in port_batches
        log(f"batch {b} x {height}x{w}: warm-up")
        timed(lambda: ours_step(batch))
        if with_port:
            timed(lambda: port_train_step(port, batch))
        ow, oc, pw, pc = [], [], [], []
        for i in range(steps):
            t = timed(lambda: ours_step(batch))
            ow.append(t[0])
            oc.append(t[1])
            msg = f"  step {i + 1}/{steps}: ours {t[0]:.2f} s"
            if with_port:
                t = timed(lambda: port_train_step(port, batch))
                pw.append(t[0])
                pc.append(t[1])
                msg += f", port {t[0]:.2f} s"
            log(msg)
        row: dict[str, Any] = {"batch": b, "height": height, "width": w, "ours": summarise(ow, oc, b)}
        if with_port:
            row["port"] = summarise(pw, pc, b)
            row["ratio_wall"] = round(row["ours"]["wall_s"] / row["port"]["wall_s"], 3)
            row["ratio_cpu"] = round(row["ours"]["cpu_s"] / row["port"]["cpu_s"], 3)
            row["ratio_wall_best"] = round(row["ours"]["wall_s_min"] / row["port"]["wall_s_min"], 3)
            row["ratio_wall_pairwise_median"] = round(statistics.median(a / b for a, b in zip(ow, pw)), 3)
        out["results"].append(row)
        del batch
        gc.collect()

    out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
