"""Validation metrics computed the way the SRNet and MOSTEL papers report them, so figures compare.

Outputs are first quantised to 8-bit (as a saved PNG would be). Per sample, on 0-255 images:
- mse: mean squared error of the RGB images scaled to [0, 1] (the papers' tables: e.g. 0.0105);
- psnr: 10 log10(255^2 / MSE_255), averaged over samples with a non-zero error (MOSTEL skips those);
- ssim: single-scale SSIM (Wang et al. 2004, the authors' ssim_index.m): luma Y = .299R + .587G + .114B
  on 0-255, an 11x11 Gaussian window with sigma 1.5, 'valid' filtering, K1 = 0.01, K2 = 0.03, L = 255;
- ssim_mostel: the number MOSTEL's evaluation script prints as SSIM: its MS-SSIM routine re-evaluates
  every level at full resolution, which reduces to mean(cs)^0.8668 * mean(ssim)^0.1333 of the same maps.
Plus the text-region L1 of o_t against t_t (pixels where mask_t is set, [0, 1] scale) and the Dice of
the thresholded skeleton o_sk against t_sk.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F

_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def quantise(x: torch.Tensor, signed: bool = True) -> torch.Tensor:
    """A network output ([-1, 1] if signed, else [0, 1]) as float64 0-255 integers (a saved PNG)."""
    x = x.detach().double()
    x = (x + 1) / 2 if signed else x
    return (x.clamp(0, 1) * 255).round()


def luma(rgb255: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) 0-255 -> (B, 1, H, W) Y = .299 R + .587 G + .114 B."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=rgb255.dtype, device=rgb255.device).view(1, 3, 1, 1)
    return (rgb255 * w).sum(1, keepdim=True)


def _window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g2 = g[:, None] * g[None, :]
    return (g2 / g2.sum()).view(1, 1, size, size)


def ssim_maps(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps of (B, 1, H, W) 0-255 images ('valid' Gaussian filtering)."""
    size = min(size, x.shape[2], x.shape[3])
    win = _window(size, sigma, x.device, x.dtype)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x ** 2
    syy = F.conv2d(y * y, win) - mu_y ** 2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return ((2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)) * cs, cs


def image_metrics(pred255: torch.Tensor, target255: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample mse ([0, 1] scale), psnr (dB; inf where identical), ssim, ssim_mostel, l1 ([0, 1])."""
    d = (pred255 - target255).flatten(1)
    mse255 = d.pow(2).mean(1)
    s_map, cs_map = ssim_maps(luma(pred255), luma(target255))
    s, cs = s_map.flatten(1).mean(1), cs_map.flatten(1).mean(1)
    w_cs = sum(_MS_WEIGHTS[:-1])
    mostel = torch.sign(cs) * cs.abs().pow(w_cs) * torch.sign(s) * s.abs().pow(_MS_WEIGHTS[-1])
    return {"mse": mse255 / 255.0 ** 2, "psnr": 10 * torch.log10(255.0 ** 2 / mse255),
            "ssim": s, "ssim_mostel": mostel, "l1": d.abs().mean(1) / 255.0}


def text_region_l1(o_t255: torch.Tensor, t_t255: torch.Tensor, mask_t: torch.Tensor) -> torch.Tensor:
    """Per-sample mean |o_t - t_t| ([0, 1] scale) over the pixels of the target text layer (mask_t > 0)."""
    m = (mask_t > 0).to(o_t255.dtype).expand_as(o_t255)
    err = ((o_t255 - t_t255).abs() * m).flatten(1).sum(1) / 255.0
    return err / m.flatten(1).sum(1).clamp_min(1)


def skeleton_dice(o_sk: torch.Tensor, t_sk: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-sample Dice of o_sk > threshold (o_sk in [0, 1]) against t_sk > 0; 1 when both are empty."""
    p = (o_sk > threshold).flatten(1).double()
    t = (t_sk > 0).flatten(1).double()
    denom = p.sum(1) + t.sum(1)
    inter = (p * t).sum(1)
    return torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom))


class MetricSums:
    """Running per-sample sums on the device; `result()` reads them back once."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, group: str, values: Mapping[str, torch.Tensor]) -> None:
        for k, v in values.items():
            key = f"{group}.{k}"
            ok = torch.isfinite(v)  # psnr of an identical pair is inf: left out, as MOSTEL does
            s = torch.where(ok, v, torch.zeros_like(v)).sum()
            self.sums[key] = self.sums.get(key, 0) + s
            self.counts[key] = self.counts.get(key, 0) + ok.sum()

    def result(self) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for key, s in self.sums.items():
            group, name = key.split(".", 1)
            n = int(self.counts[key])
            out.setdefault(group, {})[name] = float(s) / n if n else None
        return out


def gain(model: Mapping[str, float | None], base: Mapping[str, float | None]) -> dict[str, float | None]:
    """How much better the model is than a baseline: dB and SSIM differences, error ratios (< 1 = better)."""
    def diff(k):
        return None if model.get(k) is None or base.get(k) is None else model[k] - base[k]

    def ratio(k):
        a, b = model.get(k), base.get(k)
        return None if a is None or not b else a / b

    return {"psnr_db": diff("psnr"), "ssim": diff("ssim"), "ssim_mostel": diff("ssim_mostel"),
            "mse_ratio": ratio("mse"), "l1_ratio": ratio("l1")}


def finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
