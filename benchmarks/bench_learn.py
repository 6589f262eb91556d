"""Does the SRNet trainer learn the edit? A reduced-width SRNet trained on CPU for a fixed CPU budget.

Renders a small dataset in-process (no Ray), then trains with the trainer's defaults (or the
settings given by flags) in chunks; after each chunk it evaluates the generator on a held-out set
and prints one JSON line: CPU-seconds spent training, step, the model's figures, the identity
baseline (i_s copied as o_f) and the gain over it. The last line is a summary.
    python benchmarks/bench_learn.py [--budget-cpu-min 30] [--threads 1] [--width 0.25] [--gan lsgan] ... > a.jsonl
    python benchmarks/bench_learn.py --summarise a.jsonl b.jsonl ... [--plot curves.png]   # one markdown comparison
The budget counts process CPU time inside training only (dataset rendering and evaluation excluded).
Runs without VGG19 weights unless --vgg-weights is given (the perceptual/style terms need them).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
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


def read_run(path: str) -> dict:
    """One bench output: its start line, eval lines and summary (None when the run was stopped early)."""
    try:
        lines = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {path}: not a bench_learn output ({type(e).__name__}: {e})")
    start = [x for x in lines if isinstance(x, dict) and x.get("event") == "start"]
    evals = [x for x in lines if isinstance(x, dict) and x.get("event") == "eval"]
    if len(start) != 1 or not evals:
        raise SystemExit(f"error: {path}: not a bench_learn output (needs one start line and eval lines)")
    summary = [x for x in lines if isinstance(x, dict) and x.get("event") == "summary"]
    return {"path": path, "start": start[0], "evals": evals, "summary": summary[-1] if summary else None}


def command(s: dict) -> str:
    """The command that reproduces a run, every trainer setting spelled out (defaults may change)."""
    adv = s.get("adv_weight", [1.0, 1.0])[0]
    return (f"--gan {s['gan']} --g-every {s['g_every']} --lr {s['lr']:g} --adv-weight {adv:g} "
            f"--width {s['width']:g} --batch-size {s['batch_size']} --budget-cpu-min {s['budget_cpu_s'] / 60:g}")


def summarise(runs: list[dict]) -> str:
    """Markdown: the runs (read_run) side by side at matched CPU-seconds (each run's evaluation nearest to the
    CPU-seconds every run reached), then each run's last evaluation and its whole curve."""
    matched = min(r["evals"][-1]["train_cpu_s"] for r in runs)
    f = lambda v, d=2: "" if v is None else f"{v:.{d}f}"   # noqa: E731
    out = [f"At matched CPU: each run's evaluation nearest to {matched:.0f} train CPU-s (reached by every run).", "",
           "| setting | step | train CPU-s | PSNR dB | SSIM | PSNR gain over identity | SSIM gain | identity PSNR | "
           "final step | final CPU-s | final PSNR | final gain | best PSNR (step) | finished |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        at = min(r["evals"], key=lambda e: abs(e["train_cpu_s"] - matched))
        last = r["evals"][-1]
        best = max(r["evals"], key=lambda e: e["model"]["psnr"] or -1)
        out.append(f"| `{command(r['start'])}` | {at['step']} | {at['train_cpu_s']:.0f} | {f(at['model']['psnr'])} | "
                   f"{f(at['model']['ssim'], 3)} | {f(at['gain']['psnr_db'])} | {f(at['gain']['ssim'], 3)} | "
                   f"{f(at['identity']['psnr'])} | {last['step']} | {last['train_cpu_s']:.0f} | "
                   f"{f(last['model']['psnr'])} | {f(last['gain']['psnr_db'])} | "
                   f"{f(best['model']['psnr'])} ({best['step']}) | {'yes' if r['summary'] else 'no'} |")
    out += ["", "Curves (PSNR dB / SSIM / PSNR gain over identity at each evaluation; train CPU-s in brackets):", ""]
    steps = sorted({e["step"] for r in runs for e in r["evals"]})
    out.append("| step | " + " | ".join(f"{r['start']['gan']} g{r['start']['g_every']} lr {r['start']['lr']:g} "
                                          f"adv {r['start'].get('adv_weight', [1.0])[0]:g}" for r in runs) + " |")
    out.append("|---|" + "---|" * len(runs))
    for st in steps:
        cells = []
        for r in runs:
            e = next((e for e in r["evals"] if e["step"] == st), None)
            cells.append("" if e is None else f"{f(e['model']['psnr'])} / {f(e['model']['ssim'], 3)} / "
                                              f"{f(e['gain']['psnr_db'])} ({e['train_cpu_s']:.0f})")
        out.append(f"| {st} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def label(s: dict) -> str:
    adv = s.get("adv_weight", [1.0, 1.0])[0]
    return f"{s['gan']}, G every {s['g_every']}, lr {s['lr']:g}" + ("" if adv else ", no GAN term (adv 0)")


def plot(runs: list[dict], png: str) -> None:
    """The curves of the runs (read_run) as a picture: PSNR and SSIM gain over the identity baseline against
    training CPU-seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from textsynth import atomic

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, key, title in ((axes[0], "psnr_db", "PSNR gain over identity (dB)"),
                           (axes[1], "ssim", "SSIM gain over identity")):
        for r in runs:
            pts = [(e["train_cpu_s"], e["gain"][key]) for e in r["evals"] if e["gain"].get(key) is not None]
            ax.plot(*zip(*pts), marker="o", markersize=3, label=label(r["start"]))
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel("training CPU-seconds")
        ax.set_title(title)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    with atomic.writing(Path(png)) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


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
    ap.add_argument("--adv-weight", type=float, default=None,
                    help="override both adversarial weights (loss.bg_adv, loss.fus_adv); 0 = no GAN term in G's loss")
    ap.add_argument("--vgg-weights", default=None)
    ap.add_argument("--work", default=os.environ.get("BENCH_LEARN_DIR", "/tmp/bench-learn"))
    ap.add_argument("--summarise", nargs="+", metavar="JSONL", default=None,
                    help="print one markdown comparison of these bench outputs instead of training")
    ap.add_argument("--plot", metavar="PNG", default=None, help="with --summarise: also draw the curves into PNG")
    args = ap.parse_args()
    if args.plot and not args.summarise:
        raise SystemExit("error: --plot needs --summarise FILE...")
    if args.summarise:
        runs = [read_run(p) for p in args.summarise]
        print(summarise(runs))
        if args.plot:
            try:
                plot(runs, args.plot)
            except OSError as e:
                raise SystemExit(f"error: --plot {args.plot}: cannot write ({e.strerror or e})")
        return
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_ds = dataset(work, "train", args.train_samples, 8, args.pipeline, 1)
    val_ds = dataset(work, "val", args.val_samples, 1, args.pipeline, 2)
    base = TrainConfig()
    over = {"gan": args.gan, "g_every": args.g_every, "bg_adv": args.adv_weight, "fus_adv": args.adv_weight}
    loss = LossConfig(**{**base.loss.to_dict(), **{k: v for k, v in over.items() if v is not None}})
    cfg = TrainConfig(model=SRNetConfig(width=args.width), loss=loss, batch_size=args.batch_size, num_workers=0,
                      device="cpu", lr=args.lr or base.lr, seed=0, log_every=50, ckpt_every=10**8,
                      sample_every=10**8, val_every=10**8, keep_checkpoints=1)
    run = Path(tempfile.mkdtemp(prefix="run-", dir=work))   # unique: several settings may share --work
    setting = {"width": args.width, "batch_size": args.batch_size, "gan": loss.gan, "g_every": loss.g_every,
               "adv_weight": [loss.bg_adv, loss.fus_adv],
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
