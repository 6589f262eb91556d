"""Device normalisation of uint8 batches: move to the device first, then scale (4x fewer bytes cross the bus)."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from textsynth.sample import IMAGE_CHANNELS, MASK_KEYS, RGB_KEYS

GREY_KEYS = MASK_KEYS  # single-channel images: scaled to [0, 1], not [-1, 1]


def to_device_normalised(batch: Mapping[str, Any], device: torch.device | str,
                         channels_last: bool = False, dtype: torch.dtype = torch.float32
                         ) -> dict[str, Any]:
    """Move a batch to `device` and normalise it there.

    uint8 RGB images (B, 3, H, W) -> x / 127.5 - 1 in [-1, 1]; uint8 t_sk / mask_t / mask_s (B, 1, H, W)
    -> x / 255 in [0, 1]. The uint8 tensors travel (4x fewer bytes than float; non_blocking, so pinned
    memory overlaps the copy). Image tensors that are already floating point are taken as normalised
    and only moved. Other entries (metadata) are passed through unchanged.
    """
    device = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if (k not in RGB_KEYS and k not in GREY_KEYS) or not isinstance(v, torch.Tensor):
            out[k] = v
            continue
        if v.dim() != 4:
            raise ValueError(f"batch[{k!r}]: expected (B, C, H, W), got shape {tuple(v.shape)}")
        want_c = 3 if k in RGB_KEYS else 1
        if v.shape[1] != want_c:
            raise ValueError(f"batch[{k!r}]: expected {want_c} channel(s), got shape {tuple(v.shape)}")
        x = v.to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.to(dtype)
            if k in RGB_KEYS:
                x = x.div_(127.5).sub_(1.0)
            else:
                x = x.div_(255.0)
        elif x.is_floating_point():
            x = x.to(dtype)
        else:
            raise TypeError(f"batch[{k!r}]: expected uint8 (or already-normalised float), got {x.dtype}")
        out[k] = x.contiguous(memory_format=fmt)
    return out


def to_device(batch: Mapping[str, Any], device: torch.device | str, channels_last: bool = False,
              dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Move a batch to `device` (uint8, non_blocking) and normalise there: RGB -> [-1, 1], masks/t_sk -> [0, 1].

    Images go through `to_device_normalised` (the trainer uses the same function); non-image entries
    (texts, ids) pass through; other tensors are moved as they are.
    """
    out = to_device_normalised(batch, device, channels_last, dtype)
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) and k not in IMAGE_CHANNELS else v
            for k, v in out.items()}
