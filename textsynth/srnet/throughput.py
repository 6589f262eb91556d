"""How fast the bundled SRNet's D+G training step consumes samples: the loader must beat this."""
from __future__ import annotations

import time

import torch

from .losses import LossConfig, VGG19Features
from .model import SRNetConfig
from .step import make_optimizers, train_step
from .train import build_models


def synthetic_batch(batch_size: int, height: int, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A uint8 batch of the loader's shapes (content does not change the step's cost)."""
    g = torch.Generator().manual_seed(seed)
    rgb = lambda: torch.randint(0, 256, (batch_size, 3, height, width), dtype=torch.uint8, generator=g)  # noqa: E731
    grey = lambda: (torch.rand(batch_size, 1, height, width, generator=g) > 0.9).to(torch.uint8) * 255  # noqa: E731
    return {"i_s": rgb(), "i_t": rgb(), "t_t": rgb(), "t_b": rgb(), "t_f": rgb(), "t_sk": grey(), "mask_t": grey()}


def step_rate(device: str, batch_size: int, height: int, width: int, steps: int = 3, warmup: int = 1,
              width_mult: float = 1.0, vgg: bool = True) -> float:
    """Samples/s of full D+G steps (paper-size model, bf16 + channels_last on CUDA, VGG with random weights)."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    gen, d_b, d_f = build_models(SRNetConfig(width=width_mult), dev, channels_last=cuda)
    opt_g, opt_d = make_optimizers(gen, d_b, d_f)
    net = VGG19Features().to(dev) if vgg else None
    batch = {k: (v.pin_memory() if cuda else v) for k, v in synthetic_batch(batch_size, height, width).items()}
    cfg = LossConfig(g_every=1)
    amp = torch.bfloat16 if cuda else None
    for s in range(warmup):
        train_step(gen, d_b, d_f, opt_g, opt_d, batch, cfg, net, step=s, channels_last=cuda, autocast_dtype=amp)
    if cuda:
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for s in range(steps):
        train_step(gen, d_b, d_f, opt_g, opt_d, batch, cfg, net, step=s, channels_last=cuda, autocast_dtype=amp)
    if cuda:
        torch.cuda.synchronize(dev)
    return steps * batch_size / (time.perf_counter() - t0)
