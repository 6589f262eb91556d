"""`textsynth evaluate`: a checkpoint's generator against the identity baseline on a dataset, as JSON."""
from __future__ import annotations

import json

import click


@click.command("evaluate")
@click.option("--checkpoint", required=True, type=click.Path(exists=True), help="ckpt-* folder or run folder.")
@click.option("--data", required=True, help="Dataset to evaluate on (its samples in stored order).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--max-batches", type=click.IntRange(min=1), default=None, help="Evaluate only this many batches.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
def command(checkpoint, data, batch_size, max_batches, device) -> None:
    """Print {samples, model, identity, gain}: MSE / PSNR / SSIM as the SRNet and MOSTEL papers report
    them (0-255 images), for the model's o_f and for i_s copied as the output, text-region L1, skeleton Dice."""
    import torch

    from ..srnet import checkpoint as ckpt
    from ..srnet.dist import device_for
    from ..srnet.evaluate import evaluate
    from ..srnet.infer import load_generator

    dev = device_for(device, 0, torch.cuda.is_available(), torch.cuda.device_count(), what="--device")
    gen = load_generator(checkpoint, dev)
    height = int(ckpt.read_state(checkpoint).get("train", {}).get("height", 64))
    table = evaluate(gen, data, batch_size=batch_size, height=height, device=dev, max_batches=max_batches)
    table = {"checkpoint": str(ckpt.find(checkpoint)), "data": data, **table}
    click.echo(json.dumps(table, indent=1))
