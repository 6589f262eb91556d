"""SRNet losses: L1 (optionally text-mask balanced), per-sample Dice, selectable GAN losses, WGAN weight
clipping that never touches normalisation parameters, and a VGG19 perceptual + style loss.

Recipe (docs/ARCHITECTURE.md, "SRNet"), all weights in `LossConfig`:
    text       = L1(o_t, t_t) + 1 * Dice(o_sk, t_sk)
    background = adv(D_b) + 10 * L1(o_b, t_b)
    fusion     = adv(D_f) + 10 * L1(o_f, t_f) + 1 * perceptual + 500 * style
    total      = text + background + fusion
Without a VGG19 (`vgg=None`) the perceptual and style terms are absent: the total then holds the other
terms only, and the returned parts carry no `f_perc` / `f_style` keys.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..typedconfig import TypedConfig

GAN_TYPES: tuple[str, ...] = ("bce", "lsgan", "hinge", "wgan")

# ---------------------------------------------------------------------------------------------
# config


@dataclass
class LossConfig(TypedConfig):
    """Loss weights and GAN settings.

    gan: "bce" (BCE with logits), "lsgan", "hinge" or "wgan" (WGAN with weight clipping to +-wgan_clip,
        applied to conv/linear weights only).
    text_l1_masked: weight the text L1 by the target mask, balancing text and background pixels (as the
        TF reference does); False = plain L1.
    g_every: update the generator every g_every-th step (1 = every step; 2 = D every step, G every second).
    """

    gan: str = "lsgan"  # the best PSNR curve of the settings benchmarks/bench_learn.py compares (README)
    text_l1: float = 1.0
    text_l1_masked: bool = True
    text_dice: float = 1.0
    bg_adv: float = 1.0
    bg_l1: float = 10.0
    fus_adv: float = 1.0
    fus_l1: float = 10.0
    fus_perceptual: float = 1.0
    fus_style: float = 500.0
    g_every: int = 1
    wgan_clip: float = 0.01
    dice_eps: float = 1e-6

    SECTION = "train.loss"

    def check(self, path: str) -> None:
        if self.gan not in GAN_TYPES:
            raise ConfigError(f"{path}.gan must be one of {GAN_TYPES}, got {self.gan!r}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("gan", "text_l1_masked"):
                continue
            if f.name == "g_every":
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ConfigError(f"{path}.g_every must be an integer >= 1, got {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"{path}.{f.name} must be a finite number >= 0, got {v!r}")
        if not isinstance(self.text_l1_masked, bool):
            raise ConfigError(f"{path}.text_l1_masked must be true or false, got {self.text_l1_masked!r}")
        if self.gan == "wgan" and self.wgan_clip <= 0:
            raise ConfigError(f"{path}.wgan_clip must be > 0 with gan='wgan', got {self.wgan_clip!r}")
        if self.dice_eps <= 0:
            raise ConfigError(f"{path}.dice_eps must be > 0, got {self.dice_eps!r}")


# ---------------------------------------------------------------------------------------------
# pixel losses


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def masked_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 balanced between text (mask) and non-text pixels: the rarer class gets the larger weight.

    mask in [0, 1], (B, 1, H, W) broadcast over channels. With r = fraction of text pixels in the batch
    (clamped to [0.01, 0.99] so that a batch without text, or all text, still gets a gradient):
    (1 - r) * mean(|d| * mask) + r * mean(|d| * (1 - mask)).
    """
    d = (pred - target).abs()
    mask = mask.to(d.dtype)
    r = mask.mean().clamp(0.01, 0.99)
    return (1.0 - r) * (d * mask).mean() + r * (d * (1.0 - mask)).mean()


def dice_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 - Dice coefficient computed per sample (over C, H, W), then averaged over the batch.

    (The public PyTorch port sums over the whole batch, so large skeletons drown small ones.)
    """
    p = pred.flatten(1).float()
    t = target.flatten(1).float()
    inter = (p * t).sum(1)
    dice = (2.0 * inter + eps) / (p.sum(1) + t.sum(1) + eps)
    return (1.0 - dice).mean()


# ---------------------------------------------------------------------------------------------
# GAN losses (discriminators output raw logits)


def gan_d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss from logits on real and fake inputs (sum of the real and fake terms)."""
    real, fake = real.float(), fake.float()
    if kind == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "lsgan":
        return ((real - 1.0) ** 2).mean() + (fake ** 2).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan":
        return fake.mean() - real.mean()
    raise ValueError(f"gan={kind!r}: must be one of {GAN_TYPES}")


def gan_g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator's adversarial loss from the discriminator's logits on its output."""
    fake = fake.float()
    if kind == "bce":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return ((fake - 1.0) ** 2).mean()
    if kind in ("hinge", "wgan"):
        return -fake.mean()
    raise ValueError(f"gan={kind!r}: must be one of {GAN_TYPES}")


_CLIPPED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                  nn.ConvTranspose3d, nn.Linear)


@torch.no_grad()
def clip_discriminator_weights(d: nn.Module, c: float) -> int:
    """Clamp the weights and biases of every conv / linear layer of `d` to [-c, c] (WGAN).

    Normalisation parameters (BatchNorm/InstanceNorm/GroupNorm/LayerNorm scale and shift) are never
    touched: clamping a norm's scale to 0.01 is what freezes the port's discriminator. Spectral-norm
    parametrised weights are clamped on their underlying `original` tensor. Returns the number of
    tensors clamped.
    """
    if not c > 0:
        raise ValueError(f"clip value c={c!r}: must be > 0")
    n = 0
    for m in d.modules():
        if not isinstance(m, _CLIPPED_TYPES):
            continue
        params = []
        if nn.utils.parametrize.is_parametrized(m, "weight"):
            params.append(m.parametrizations.weight.original)
        elif hasattr(m, "weight_orig"):        # legacy torch.nn.utils.spectral_norm
            params.append(m.weight_orig)
        elif m.weight is not None:
            params.append(m.weight)
        if m.bias is not None:
            params.append(m.bias)
        for p in params:
            p.clamp_(-c, c)
            n += 1
    return n


# ---------------------------------------------------------------------------------------------
# VGG19 perceptual and style losses

# torchvision's vgg19().features layout: numbers are 3x3 convs (each followed by ReLU), "M" = max-pool.
_VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
VGG19_TAPS: tuple[int, ...] = (1, 6, 11, 20, 29)   # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """VGG19 `features` stack (torchvision's layer indices) up to relu5_1, frozen, always in eval mode.

    forward(x) takes RGB in [-1, 1], applies the ImageNet normalisation (unless imagenet_normalise is
    False) and returns the activations at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
    Weights: `from_file(path)` loads a torchvision VGG19 state dict (keys `features.N.weight/bias`) from
    .pth / .pt (torch.load, weights_only=True) or .safetensors. A freshly built instance is randomly
    initialised (only useful for timing and tests).
    """

    def __init__(self, imagenet_normalise: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19_CFG:
            if len(layers) > VGG19_TAPS[-1]:
                break
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, 1, 1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers[: VGG19_TAPS[-1] + 1])
        self.imagenet_normalise = imagenet_normalise
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":   # always eval (no BN/dropout anyway)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.imagenet_normalise:
            x = ((x + 1.0) * 0.5 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG19_TAPS:
                out.append(x)
        return out

    def expected_keys(self) -> dict[str, torch.Size]:
        return {f"features.{k}": v.shape for k, v in self.features.state_dict().items()}

    def load_vgg_state_dict(self, state: Mapping[str, Any], source: str = "state dict") -> None:
        """Load torchvision-format weights; keys beyond relu5_1 (later layers, classifier) are ignored."""
        if not isinstance(state, Mapping):
            raise ValueError(f"{source}: expected a state dict (mapping of names to tensors), "
                             f"got {type(state).__name__}")
        if "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        norm: dict[str, Any] = {}
        for k, v in state.items():
            k = str(k)
            if k.startswith("module."):
                k = k[len("module."):]
            norm[k] = v
        if not any(k.startswith("features.") for k in norm):      # a bare `features` Sequential
            norm = {f"features.{k}": v for k, v in norm.items()}
        want = self.expected_keys()
        missing = [k for k in want if k not in norm]
        if missing:
            raise ValueError(f"{source}: not a torchvision VGG19 state dict: missing {len(missing)} of "
                             f"{len(want)} keys, e.g. {missing[:3]}")
        new: dict[str, torch.Tensor] = {}
        for k, shape in want.items():
            v = norm[k]
            if not isinstance(v, torch.Tensor):
                raise ValueError(f"{source}: {k} is a {type(v).__name__}, not a tensor")
            if v.shape != shape:
                raise ValueError(f"{source}: {k} has shape {tuple(v.shape)}, VGG19 needs {tuple(shape)}")
            new[k[len("features."):]] = v.float()
        self.features.load_state_dict(new, strict=True)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], imagenet_normalise: bool = True) -> "VGG19Features":
        """Build and load from a .pth / .pt (torch.load, weights_only=True) or .safetensors file."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"VGG19 weights file not found: {p}")
        suffix = p.suffix.lower()
        try:
            if suffix == ".safetensors":
                from safetensors.torch import load_file
                state: Any = load_file(str(p), device="cpu")
            elif suffix in (".pth", ".pt", ".bin", ".ckpt"):
                state = torch.load(str(p), map_location="cpu", weights_only=True)
            else:
                raise ValueError(f"{p}: unsupported VGG19 weights format {suffix!r} "
                                 f"(use .pth/.pt or .safetensors)")
        except ValueError:
            raise
        except Exception as e:  # corrupt file, pickle with code objects, wrong format...
            raise ValueError(f"{p}: cannot read VGG19 weights ({type(e).__name__}: {e})") from e
        m = cls(imagenet_normalise=imagenet_normalise)
        m.load_vgg_state_dict(state, source=str(p))
        return m


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C * H * W."""
    b, c, h, w = f.shape
    x = f.float().reshape(b, c, h * w)
    return torch.bmm(x, x.transpose(1, 2)) / (c * h * w)


def perceptual_loss(feats_pred: list[torch.Tensor], feats_target: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the mean L1 between activations."""
    return sum((l1_loss(a.float(), b.float()) for a, b in zip(feats_pred, feats_target)),
               torch.zeros((), device=feats_pred[0].device))


def style_loss(feats_pred: list[torch.Tensor], feats_target: list[torch.Tensor] | None = None,
               grams_target: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Sum over layers of the mean L1 between Gram matrices (each normalised by C*H*W).

    Pass precomputed target Gram matrices as grams_target to avoid recomputing them.
    """
    if grams_target is None:
        if feats_target is None:
            raise ValueError("style_loss needs feats_target or grams_target")
        grams_target = [gram_matrix(f) for f in feats_target]
    return sum((l1_loss(gram_matrix(a), g) for a, g in zip(feats_pred, grams_target)),
               torch.zeros((), device=feats_pred[0].device))


# ---------------------------------------------------------------------------------------------
# generator total


def generator_loss(out: Mapping[str, torch.Tensor], tgt: Mapping[str, torch.Tensor],
                   d_b_fake: torch.Tensor, d_f_fake: torch.Tensor, cfg: LossConfig,
                   vgg: VGG19Features | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total generator loss and its (unweighted) parts.

    out: o_sk, o_t, o_b, o_f; tgt: normalised t_sk, t_t, t_b, t_f, mask_t; d_*_fake: discriminator
    logits on the generator's outputs. The VGG terms run in float32 (see perceptual_and_style).
    Parts: t_l1, t_dice, b_adv, b_l1, f_adv, f_l1 and, with a vgg, f_perc and f_style.
    """
    parts: dict[str, torch.Tensor] = {}
    o_t, o_f = out["o_t"].float(), out["o_f"].float()
    if cfg.text_l1_masked:
        if "mask_t" not in tgt:
            raise KeyError("LossConfig.text_l1_masked=True needs mask_t in the batch")
        parts["t_l1"] = masked_l1_loss(o_t, tgt["t_t"], tgt["mask_t"])
    else:
        parts["t_l1"] = l1_loss(o_t, tgt["t_t"])
    parts["t_dice"] = dice_loss(out["o_sk"], tgt["t_sk"], cfg.dice_eps)
    parts["b_adv"] = gan_g_loss(cfg.gan, d_b_fake)
    parts["b_l1"] = l1_loss(out["o_b"].float(), tgt["t_b"])
    parts["f_adv"] = gan_g_loss(cfg.gan, d_f_fake)
    parts["f_l1"] = l1_loss(o_f, tgt["t_f"])
    total = (cfg.text_l1 * parts["t_l1"] + cfg.text_dice * parts["t_dice"]
             + cfg.bg_adv * parts["b_adv"] + cfg.bg_l1 * parts["b_l1"]
             + cfg.fus_adv * parts["f_adv"] + cfg.fus_l1 * parts["f_l1"])
    if vgg is not None and (cfg.fus_perceptual > 0 or cfg.fus_style > 0):
        parts["f_perc"], style = perceptual_and_style(vgg, out["o_f"], tgt["t_f"], cfg.fus_style > 0)
        total = total + cfg.fus_perceptual * parts["f_perc"]
        if style is not None:
            parts["f_style"] = style
            total = total + cfg.fus_style * parts["f_style"]
    return total, parts


def perceptual_and_style(vgg: VGG19Features, o_f: torch.Tensor, t_f: torch.Tensor, style: bool = True
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Perceptual and style losses of o_f against t_f, always in float32 outside any autocast region.

    Gram matrices of near-equal features differ by tiny amounts that bf16 cannot represent (the style
    loss came out 1.4x-3.3x too large under bf16 autocast); with weight 500 that is a noise floor.
    The target's features and Gram matrices are computed without autograd.
    """
    with torch.autocast(device_type=o_f.device.type, enabled=False):
        with torch.no_grad():
            ft = vgg(t_f.float())
            gt = [gram_matrix(f) for f in ft] if style else None
        fo = vgg(o_f.float())
        perc = perceptual_loss(fo, ft)
        return perc, (style_loss(fo, grams_target=gt) if gt is not None else None)
