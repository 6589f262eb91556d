"""Inference: only the generator is built and loaded (no discriminators, no VGG), always in eval mode."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from . import checkpoint as ckpt
from .model import Generator, SRNetConfig


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The generator of a checkpoint (or a run folder's latest), in eval mode."""
    state = ckpt.read_state(Path(path))
    gen = Generator(SRNetConfig.from_dict(state["train"]["model"]))
    ckpt.load_module(Path(path), "gen", gen)
    return gen.to(device).eval()


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


@torch.no_grad()
def edit(gen: Generator, i_s: np.ndarray, i_t: np.ndarray) -> dict[str, np.ndarray]:
    """Run the generator on one (i_s, i_t) pair of equal size (H, W multiples of 8); uint8 outputs."""
    gen.eval()
    dev = next(gen.parameters()).device
    x_s = _to_tensor(i_s).to(dev).float() / 127.5 - 1
    x_t = _to_tensor(i_t).to(dev).float() / 127.5 - 1
    out = gen(x_t, x_s)
    res: dict[str, np.ndarray] = {}
    for k, v in out.items():
        a = v[0].float().cpu()
        a = a if k == "o_sk" else (a + 1) / 2
        a = (a.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        res[k] = a[..., 0] if a.shape[2] == 1 else a
    return res


def _fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    interp = cv2.INTER_AREA if img.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def edit_pair(gen: Generator, i_s: np.ndarray, i_t: np.ndarray, height: int = 64) -> dict[str, np.ndarray]:
    """Run on a pair of any equal size: resized to `height` (width a multiple of 8) and back."""
    h0, w0 = i_s.shape[:2]
    w = max(8, int(round(w0 * height / h0 / 8)) * 8)
    out = edit(gen, _fit(i_s, height, w), _fit(i_t, height, w))
    return {k: cv2.resize(v, (w0, h0), interpolation=cv2.INTER_LINEAR) for k, v in out.items()}


def edit_crop(gen: Generator, crop: np.ndarray, text: str, fonts: Any, height: int = 64) -> dict[str, np.ndarray]:
    """Replace the text of an RGB crop with `text`; outputs come back at the crop's own size."""
    from ..render import render_plain

    h0, w0 = crop.shape[:2]
    i_t = render_plain(fonts.standard_pil(fonts.standard_for(text), 64), text, h0, w0)
    return edit_pair(gen, crop, i_t, height)
