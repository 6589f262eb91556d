"""Which objective a run optimises: the paper's (with VGG19 perceptual + style terms) or, by explicit
opt-out, the one without them. Resolved once at start, stored in every checkpoint, checked on resume.

VGG19 ImageNet weights come from torchvision's published file through PyTorch's hub cache
(`torch.hub.load_state_dict_from_url`, under $TORCH_HOME): downloaded where the machine is online,
found in the cache where it was downloaded before, or given as a file.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .losses import VGG19Features

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbbe8a1.pth"  # torchvision's VGG19_Weights.IMAGENET1K_V1


def vgg19_url() -> str:
    """torchvision's URL, or a mirror named by TEXTSYNTH_VGG19_URL (its last path part is the cache file name)."""
    return os.environ.get("TEXTSYNTH_VGG19_URL", VGG19_URL)


def cache_path() -> Path:
    """Where torch.hub keeps the downloaded file: <torch.hub.get_dir()>/checkpoints/<file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(vgg19_url())


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def refusal() -> str:
    return (f"the SRNet objective needs VGG19 ImageNet weights for its perceptual and style terms and none are "
            f"available: (1) run once on a machine that can reach {vgg19_url()} (torch.hub downloads it), "
            f"(2) copy that file to {cache_path()} (the torch hub cache under TORCH_HOME), or "
            f"(3) pass --vgg-weights FILE (a torchvision VGG19 state dict or .safetensors); "
            f"or train without those terms with --no-perceptual")


def perceptual_setup(perceptual: bool, vgg_weights: str | None) -> tuple[VGG19Features | None, dict[str, Any]]:
    """(the frozen VGG19 or None, the objective record saved in checkpoints). Raises ConfigError when
    perceptual is wanted but no weights can be had (one message naming every way out)."""
    if not perceptual:
        if vgg_weights:
            raise ConfigError("--vgg-weights and --no-perceptual contradict each other: give one")
        return None, {"perceptual": False}
    if vgg_weights:
        path = Path(vgg_weights)
        try:
            vgg = VGG19Features.from_file(path)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(str(e)) from e
        return vgg, {"perceptual": True, "vgg_sha256": _sha256(path), "vgg_source": str(path)}
    path = cache_path()
    try:
        state = torch.hub.load_state_dict_from_url(vgg19_url(), map_location="cpu", progress=False,
                                                   check_hash=True, weights_only=True)
    except Exception as e:  # URLError, hash mismatch, unreadable cache file ...
        if path.is_file():
            raise ConfigError(f"cannot read VGG19 weights {path}: {type(e).__name__}: {e}") from e
        raise ConfigError(refusal()) from e
    vgg = VGG19Features()
    try:
        vgg.load_vgg_state_dict(state, source=str(path))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return vgg, {"perceptual": True, "vgg_sha256": _sha256(path), "vgg_source": str(path)}


def describe(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return "unknown (checkpoint from an older version)"
    if not obj.get("perceptual"):
        return "without perceptual/style terms (--no-perceptual)"
    return f"with VGG19 perceptual/style terms (weights sha256 {obj['vgg_sha256'][:12]}..., {obj.get('vgg_source')})"


def check_resume(saved: dict[str, Any] | None, now: dict[str, Any], where: Path) -> None:
    """Refuse to continue a run under another objective than the one it was trained with."""
    same = saved is not None and saved.get("perceptual") == now.get("perceptual") and \
        saved.get("vgg_sha256") == now.get("vgg_sha256")
    if not same:
        raise ConfigError(f"{where} was trained {describe(saved)}; this run would train {describe(now)}: "
                          f"resume with the same choice, or use another --out")
