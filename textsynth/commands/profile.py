"""`textsynth profile`: data-loading throughput per worker count, against a PNG folder of the same samples."""
from __future__ import annotations

import click

from ..sample import IMAGE_KEYS


def _int_list(ctx, param, value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not out or any(v < 0 for v in out):
        raise click.BadParameter(f"expected non-negative integers, got {value!r}")
    return out


def _keys(ctx, param, value: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    bad = [k for k in keys if k not in IMAGE_KEYS]
    if bad or not keys:
        raise click.BadParameter(f"unknown key(s) {bad}; choose from {', '.join(IMAGE_KEYS)}")
    return keys


@click.command("profile")
@click.argument("dataset_dir")
@click.option("--workers", default="0,1,2,4", show_default=True, callback=_int_list,
              help="Comma-separated DataLoader worker counts to measure.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--batches", type=click.IntRange(1), default=50, show_default=True,
              help="Batches measured per worker count (after warm-up).")
@click.option("--warmup", type=click.IntRange(0), default=4, show_default=True)
@click.option("--height", type=click.IntRange(8), default=64, show_default=True)
@click.option("--keys", default=",".join(IMAGE_KEYS), show_default=True, callback=_keys,
              help="Image keys to load.")
@click.option("--fit", type=click.Choice(["resize", "pad", "auto"]), default="resize", show_default=True,
              help="Batch width rule: SRNet resize to the mean width, pad to the widest, or pad when widths are close.")
@click.option("--verify", type=click.Choice(["once", "always"]), default="once", show_default=True,
              help="LZ4 checksums on each process's first decode of an image, or on every decode.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Also move and normalise every batch on this device (cuda: pinned memory).")
@click.option("--model", type=click.Choice(["srnet"]), default=None,
              help="Compare with the SRNet training step's consumption rate (loader headroom).")
@click.option("--png/--no-png", default=True, show_default=True, help="Measure the PNG-folder baseline.")
@click.option("--png-dir", default=None, type=click.Path(file_okay=False),
              help="PNG folder to reuse (exported there first if empty); default: a temp folder.")
@click.option("--png-limit", type=click.IntRange(1), default=2000, show_default=True,
              help="Samples exported for the PNG baseline.")
@click.option("--out", "out", default=None, help="Output prefix: writes PREFIX.json and PREFIX.png.")
def command(dataset_dir, workers, batch_size, batches, warmup, height, keys, fit, verify, device, model, png,
            png_dir, png_limit, out) -> None:
    """Measure loader samples/s, MB/s and CPU-ms/sample of DATASET_DIR (a folder or s3://...)."""
    from rich.console import Console

    from ..loader_profile import render_table, run_profile, write_outputs

    console = Console(width=max(Console().width, 170))  # the table has 12 columns
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.BadParameter("CUDA is not available on this machine", param_hint="--device")
    report = run_profile(dataset_dir, workers, batch_size, batches, warmup, keys, height, device, model, png,
                         png_dir, png_limit, fit=fit, verify=verify,
                         log=lambda s: console.print(s, markup=False, highlight=False))
    console.print(render_table(report))
    mdl = report.get("model")
    if mdl is not None:
        console.print(mdl["message"], highlight=False)
        if mdl.get("step_samples_per_s"):
            for r in report["results"]:
                console.print(f"workers={r['workers']}: loader headroom = loader rate / step consumption rate = "
                              f"{r['arrow']['samples_per_s']:.0f} / {mdl['step_samples_per_s']:.0f} = "
                              f"{r['loader_headroom']:.2f}", highlight=False)
    if out:
        json_path, png_path = write_outputs(report, out)
        console.print(f"wrote {json_path} and {png_path}", highlight=False)
