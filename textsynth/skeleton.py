"""One-pixel skeletons of glyph masks, and the thinness check used by tests, verify and the loader."""
from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize as _skeletonize


def skeletonize(mask: np.ndarray, threshold: int = 128) -> np.ndarray:
    """0/255 uint8 skeleton of `mask >= threshold` (8-connected, one pixel thin)."""
    return _skeletonize(mask >= threshold).astype(np.uint8) * 255


def thick_blocks(sk: np.ndarray) -> int:
    """Number of fully-on 2x2 blocks: zero for a one-pixel-thin skeleton."""
    on = sk > 0
    return int((on[:-1, :-1] & on[1:, :-1] & on[:-1, 1:] & on[1:, 1:]).sum())
