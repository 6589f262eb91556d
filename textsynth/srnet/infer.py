"""Inference: only the generator is built and loaded (no discriminators, no VGG), always in eval mode."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..sample import rounded_width
from . import checkpoint as ckpt
from .model import Generator, SRNetConfig
from .step import to_device_normalised


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The generator of a checkpoint (or a run folder's latest), in eval mode."""
    state = ckpt.read_state(Path(path))
    model = ckpt.state_value(Path(path), state, "train", "model")
    try:
        gen = Generator(SRNetConfig.from_dict(model))
    except (TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{ckpt.find(path) / 'state.json'}: bad model config: {e}") from e
    ckpt.load_module(Path(path), "gen", gen)
    return gen.to(device).eval()


@torch.no_grad()
def run_generator(gen: Generator, batch: dict[str, Any], device: torch.device,
                  amp_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Generator outputs (float) for a uint8 batch, in eval mode: BatchNorm uses running statistics
    (a generator left in train mode gives the 'black dots' of the original notes)."""
    was_training = gen.training
    gen.eval()
    try:
        x = to_device_normalised({k: batch[k] for k in ("i_s", "i_t")}, device)
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with ctx:
            out = gen(x["i_t"], x["i_s"])
        return {k: v.float() for k, v in out.items()}
    finally:
        gen.train(was_training)


def to_uint8(t: torch.Tensor, signed: bool) -> np.ndarray:
    """One (C, H, W) output as uint8 (H, W, C): tanh outputs (signed) from [-1, 1], o_sk from [0, 1]."""
    a = t.detach().float().cpu()
    a = (a + 1) / 2 if signed else a
    return (a.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def edit(gen: Generator, i_s: np.ndarray, i_t: np.ndarray) -> dict[str, np.ndarray]:
    """Run the generator on one (i_s, i_t) pair of equal size (H, W multiples of 8); uint8 outputs."""
    batch = {k: torch.from_numpy(np.ascontiguousarray(v)).permute(2, 0, 1)[None]
             for k, v in (("i_s", i_s), ("i_t", i_t))}
    out = run_generator(gen, batch, next(gen.parameters()).device)
    res: dict[str, np.ndarray] = {}
    for k, v in out.items():
        a = to_uint8(v[0], signed=k != "o_sk")
        res[k] = a[..., 0] if a.shape[2] == 1 else a
    return res


def _fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    interp = cv2.INTER_AREA if img.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def edit_pair(gen: Generator, i_s: np.ndarray, i_t: np.ndarray, height: int = 64) -> dict[str, np.ndarray]:
    """Run on a pair of any equal size: resized to `height` (width a multiple of 8) and back."""
    h0, w0 = i_s.shape[:2]
    w = rounded_width(w0 * height / h0)
    out = edit(gen, _fit(i_s, height, w), _fit(i_t, height, w))
    return {k: cv2.resize(v, (w0, h0), interpolation=cv2.INTER_LINEAR) for k, v in out.items()}
