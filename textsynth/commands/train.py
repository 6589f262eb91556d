"""`textsynth train`: train the bundled SRNet on a dataset (resumes from OUT's latest checkpoint)."""
from __future__ import annotations

import sys

import click


@click.command("train")
@click.argument("dataset")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (checkpoints, logs, grids).")
@click.option("--val", default=None, help="Validation dataset (model vs identity baseline: MSE, PSNR, SSIM, ...).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Train config (.toml/.json): [model], [loss] and top-level keys of TrainConfig.")
@click.option("--vgg-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="VGG19 ImageNet weights (torchvision state dict or .safetensors); default: torch hub cache.")
@click.option("--no-perceptual", is_flag=True, default=False,
              help="Train without the perceptual and style terms (no VGG19 needed; not the paper's objective).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Override the config's total steps.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many more steps.")
@click.option("--device", default=None, help="auto | cpu | cuda (this process's LOCAL_RANK GPU) | cuda:N")
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile the networks.")
@click.option("--allow-partial", is_flag=True, help="Read an incomplete or inconsistent dataset's usable shards (warns).")
@click.option("--log", "log_format", type=click.Choice(["jsonl", "tensorboard"]), default=None,
              help="Log format (log.jsonl is always written; tensorboard adds event files under OUT/tb).")
def command(dataset, out, val, config_path, vgg_weights, no_perceptual, steps, max_steps, device, compile_,
            allow_partial, log_format) -> None:
    """Train SRNet on DATASET into OUT; launch with torchrun for DDP. SIGTERM/SIGINT checkpoint and stop."""
    import dataclasses

    from ..srnet.train import TrainConfig, TrainingStopped, train

    cfg = TrainConfig.load(config_path) if config_path else TrainConfig()
    overrides = {k: v for k, v in (("steps", steps), ("device", device), ("compile", compile_),
                                   ("log_format", log_format)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    try:
        train(dataset, out, cfg, val=val, vgg_weights=vgg_weights, perceptual=not no_perceptual,
              max_steps=max_steps, log=click.echo, allow_partial=allow_partial)
    except TrainingStopped as e:
        click.echo(str(e), err=True)
        sys.exit(128 + int(e.signum))
