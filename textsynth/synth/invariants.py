"""The invariants of docs/ARCHITECTURE.md ("One sample") that a stored sample must satisfy, checked from its images alone.

Used by the tests over freshly rendered samples and by `textsynth verify` over shards.
"""
from __future__ import annotations

import numpy as np

from ..sample import GREY, IMAGE_CHANNELS, IMAGE_KEYS, Sample
from .skeleton import thick_blocks


def check_sample(s: Sample) -> list[str]:
    """Problems found in one sample (empty list = all invariants hold)."""
    sid = s.meta.get("id", "?")
    problems: list[str] = []
    shapes = set()
    for key in IMAGE_KEYS:
        img = s.images.get(key)
        if img is None:
            return [f"{sid}: missing image {key}"]
        want_ndim = 3 if IMAGE_CHANNELS[key] == 3 else 2
        if img.dtype != np.uint8 or img.ndim != want_ndim or (want_ndim == 3 and img.shape[2] != 3):
            problems.append(f"{sid}: {key} has dtype {img.dtype} shape {img.shape}")
        shapes.add(img.shape[:2])
    if len(shapes) != 1:
        return problems + [f"{sid}: images differ in size: {sorted(shapes)}"]
    im = s.images
    mask_t, mask_s, t_sk = im["mask_t"], im["mask_s"], im["t_sk"]
    for key in ("mask_t", "mask_s", "t_sk"):
        if not np.isin(im[key], (0, 255)).all():
            problems.append(f"{sid}: {key} is not binary 0/255")
    out_t, out_s = mask_t == 0, mask_s == 0
    if not np.array_equal(im["t_f"][out_t], im["t_b"][out_t]):
        problems.append(f"{sid}: t_f differs from t_b outside the target text layer")
    if not np.array_equal(im["i_s"][out_s], im["t_b"][out_s]):
        problems.append(f"{sid}: i_s differs from t_b outside the source text layer")
    if not (im["t_t"][out_t] == GREY).all():
        problems.append(f"{sid}: t_t is not grey {GREY} outside the target text layer")
    if (t_sk[out_t] > 0).any():
        problems.append(f"{sid}: t_sk lies outside mask_t")
    if thick_blocks(t_sk):
        problems.append(f"{sid}: t_sk is not one pixel thin ({thick_blocks(t_sk)} 2x2 blocks)")
    if mask_t.any() and not t_sk.any():
        problems.append(f"{sid}: target has coverage but no skeleton")
    if not mask_t.any() or not mask_s.any():
        problems.append(f"{sid}: a text layer is empty")
    return problems
