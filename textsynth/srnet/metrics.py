"""Validation metrics on images in [0, 1]: L1, PSNR and SSIM (Gaussian window, per channel)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per sample."""
    return (pred - target).abs().flatten(1).mean(1)


def psnr(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio per sample, dB, for images in [0, 1]."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / (mse + eps))


def _gauss(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per sample (Wang et al. 2004 constants), images (B, C, H, W) in [0, 1]."""
    c = pred.shape[1]
    g = _gauss(size, sigma, pred.device, pred.dtype)
    kx = g.view(1, 1, 1, size).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, size, 1).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(F.pad(x, (size // 2, size // 2, 0, 0), mode="reflect"), kx, groups=c)
        return F.conv2d(F.pad(x, (0, 0, size // 2, size // 2), mode="reflect"), ky, groups=c)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = blur(pred), blur(target)
    sxx = blur(pred * pred) - mu_x ** 2
    syy = blur(target * target) - mu_y ** 2
    sxy = blur(pred * target) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)
