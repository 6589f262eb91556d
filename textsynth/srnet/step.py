"""One SRNet training step as a pure function (no trainer state): D update, then (on schedule) G update.

Cost-saving choices versus the public PyTorch port (see benchmarks/):
- the generator runs once per step; the D step uses its detached outputs, the G step reuses the graph
  (without autograd when G is not updated this step);
- discriminator parameters do not require grad during the G step, so no D weight gradients are computed;
- VGG19 is frozen (no weight gradients); the target's features (and Gram matrices) are computed once,
  without autograd; only o_f goes through VGG with autograd;
- gradients are set to None instead of zero-filled; losses are read back with a single device sync, or
  not at all (`as_tensors=True`: the trainer accumulates them on the device).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from textsynth.loading.normalise import to_device_normalised  # noqa: F401  (lives with the loader now)
from textsynth.srnet.losses import (
    LossConfig, VGG19Features, clip_discriminator_weights, gan_d_loss, generator_loss,
)

def _freeze(modules: Iterable[nn.Module]) -> list[tuple[nn.Parameter, bool]]:
    """Turn off requires_grad on every parameter; return the previous flags for `_restore`."""
    saved = []
    for m in modules:
        for p in m.parameters():
            saved.append((p, p.requires_grad))
            p.requires_grad_(False)
    return saved


def _restore(saved: list[tuple[nn.Parameter, bool]]) -> None:
    for p, flag in saved:
        p.requires_grad_(flag)


def _opt_params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


def _is_channels_last(m: nn.Module) -> bool:
    for p in m.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def make_optimizers(gen: nn.Module, d_b: nn.Module, d_f: nn.Module, lr: float = 1e-4,
                    betas: tuple[float, float] = (0.9, 0.999)) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and one Adam for both discriminators (fused kernels where available, else foreach)."""
    def adam(params: list[nn.Parameter]) -> torch.optim.Adam:
        try:
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        except (RuntimeError, ValueError):
            return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)
    return adam(list(gen.parameters())), adam(list(d_b.parameters()) + list(d_f.parameters()))


def train_step(gen: nn.Module, d_b: nn.Module, d_f: nn.Module,
               opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               batch: Mapping[str, Any], loss_cfg: LossConfig, vgg: VGG19Features | None = None,
               step: int = 0, d_steps_per_g: int | None = None, *,
               channels_last: bool | None = None, autocast_dtype: torch.dtype | None = None,
               grad_sync: Callable[[list[torch.Tensor]], None] | None = None,
               d_for_g: tuple[nn.Module, nn.Module] | None = None, as_tensors: bool = False
               ) -> dict[str, Any]:
    """One training iteration. Returns float losses.

    batch: uint8 dict (i_s, i_t, t_t, t_b, t_f: (B,3,H,W); t_sk, mask_t: (B,1,H,W)) on any device, or
        the output of `to_device_normalised`. It is moved to the generator's device.
    Schedule: D is updated every call; G when step % g_every == g_every - 1, where g_every is
        d_steps_per_g if given, else loss_cfg.g_every (g_every=2: D every iteration, G every second).
    loss_cfg.gan picks the GAN loss; with "wgan" the discriminators' conv weights are clipped to
        +-loss_cfg.wgan_clip after each D update (normalisation parameters never).
    vgg: a VGG19Features for the perceptual/style terms; None = those terms are absent.
    channels_last: memory format of the inputs (default: follow the generator's weights).
    autocast_dtype: e.g. torch.bfloat16 to run the networks under autocast (losses stay float32).
    grad_sync: called with the list of an optimiser's parameters after backward and before each
        optimiser step (e.g. to all-reduce gradients across processes); None = nothing.
    d_for_g: the discriminators to call in the G update (default d_b, d_f); the trainer passes the
        modules inside its DDP wrappers, since frozen discriminators take no part in gradient reduction.
    as_tensors: return {"names": [...], "values": 1-D device tensor, "g_updated": bool} without reading
        anything back to the host (the trainer accumulates on the device); default: a dict of floats.
    Returned keys: d_b, d_f (discriminator losses), d_real_b/d_fake_b/d_real_f/d_fake_f (mean logits),
        g_updated (1.0/0.0) and, when G was updated: g_total, t_l1, t_dice, b_adv, b_l1, f_adv, f_l1
        and (with vgg) f_perc, f_style.
    """
    g_every = loss_cfg.g_every if d_steps_per_g is None else int(d_steps_per_g)
    if g_every < 1:
        raise ValueError(f"d_steps_per_g={d_steps_per_g!r}: must be >= 1")
    update_g = step % g_every == g_every - 1

    dev = next(gen.parameters()).device
    if channels_last is None:
        channels_last = _is_channels_last(gen)
    x = to_device_normalised(batch, dev, channels_last)
    missing = [k for k in ("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f") if k not in x]
    if missing:
        raise KeyError(f"batch lacks {missing}")
    i_s, i_t = x["i_s"], x["i_t"]
    amp = (torch.autocast(device_type=dev.type, dtype=autocast_dtype) if autocast_dtype is not None
           else contextlib.nullcontext())

    gen.train()
    d_b.train()
    d_f.train()

    # --- generator forward, shared by the D and G updates
    with amp, (contextlib.nullcontext() if update_g else torch.no_grad()):
        out = gen(i_t, i_s)
    o_b, o_f = out["o_b"], out["o_f"]

    # --- discriminator update (real and fake in separate calls: separate BatchNorm statistics, the
    # same as the fake-only call of the G update sees)
    with amp:
        real_b = d_b(torch.cat((x["t_b"], i_s), 1))
        fake_b = d_b(torch.cat((o_b.detach(), i_s), 1))
        real_f = d_f(torch.cat((x["t_f"], i_t), 1))
        fake_f = d_f(torch.cat((o_f.detach(), i_t), 1))
    loss_db = gan_d_loss(loss_cfg.gan, real_b, fake_b)
    loss_df = gan_d_loss(loss_cfg.gan, real_f, fake_f)
    opt_d.zero_grad(set_to_none=True)
    (loss_db + loss_df).backward()
    if grad_sync is not None:
        grad_sync(_opt_params(opt_d))
    opt_d.step()
    if loss_cfg.gan == "wgan":
        clip_discriminator_weights(d_b, loss_cfg.wgan_clip)
        clip_discriminator_weights(d_f, loss_cfg.wgan_clip)

    names = ["d_b", "d_f", "d_real_b", "d_fake_b", "d_real_f", "d_fake_f"]
    vals = [loss_db.detach(), loss_df.detach(), real_b.detach().float().mean(), fake_b.detach().float().mean(),
            real_f.detach().float().mean(), fake_f.detach().float().mean()]

    # --- generator update
    if update_g:
        gd_b, gd_f = d_for_g if d_for_g is not None else (d_b, d_f)
        saved = _freeze((gd_b, gd_f))
        try:
            with amp:
                adv_b = gd_b(torch.cat((o_b, i_s), 1))
                adv_f = gd_f(torch.cat((o_f, i_t), 1))
            total, parts = generator_loss(out, x, adv_b, adv_f, loss_cfg, vgg)  # float32, VGG outside autocast
            opt_g.zero_grad(set_to_none=True)
            total.backward()
            if grad_sync is not None:
                grad_sync(_opt_params(opt_g))
            opt_g.step()
        finally:
            _restore(saved)
        names += ["g_total", *parts]
        vals += [total.detach(), *(v.detach() for v in parts.values())]

    values = torch.stack([v.float() for v in vals])
    if as_tensors:
        return {"names": tuple(names), "values": values, "g_updated": update_g}
    res = dict(zip(names, values.tolist()))      # one device sync
    res["g_updated"] = 1.0 if update_g else 0.0
    return res
