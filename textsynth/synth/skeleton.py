"""One-pixel skeletons of glyph masks, and the thinness check used by tests, verify and the loader."""
from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize as _skeletonize

# neighbours in Yokoi order: E, NE, N, NW, W, SW, S, SE (dy, dx)
_RING = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _simple(on: np.ndarray, y: int, x: int) -> bool:
    """True if removing pixel (y, x) keeps 8-connectivity (Yokoi number 1) and it is no end point."""
    h, w = on.shape
    n = [bool(0 <= y + dy < h and 0 <= x + dx < w and on[y + dy, x + dx]) for dy, dx in _RING]
    if sum(n) < 2:
        return False
    b = [not v for v in n] + [not n[0], not n[1]]
    return sum(b[k] and not (b[k + 1] and b[k + 2]) for k in (0, 2, 4, 6)) == 1


def _remove_blocks(on: np.ndarray) -> np.ndarray:
    """Zhang-Suen style skeletons keep a few 2x2 squares at junctions: drop one simple pixel of each."""
    for _ in range(16):
        blocks = np.argwhere(on[:-1, :-1] & on[1:, :-1] & on[:-1, 1:] & on[1:, 1:])
        changed = False
        for y, x in blocks:
            for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
                if on[y, x] and on[y + 1, x] and on[y, x + 1] and on[y + 1, x + 1] and _simple(on, y + dy, x + dx):
                    on[y + dy, x + dx] = False
                    changed = True
                    break
        if not changed:
            break
    return on


def skeletonize(mask: np.ndarray, threshold: int = 128) -> np.ndarray:
    """0/255 uint8 skeleton of `mask >= threshold` (8-connected, one pixel thin)."""
    return _remove_blocks(_skeletonize(mask >= threshold)).astype(np.uint8) * 255


def thick_blocks(sk: np.ndarray) -> int:
    """Number of 2x2 fully-on blocks holding a removable (simple) pixel: zero for a one-pixel-thin
    skeleton. Blocks where two diagonal strokes cross cannot lose a pixel without cutting a stroke,
    so they do not count."""
    on = sk > 0
    count = 0
    for y, x in np.argwhere(on[:-1, :-1] & on[1:, :-1] & on[:-1, 1:] & on[1:, 1:]):
        count += any(_simple(on, y + dy, x + dx) for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)))
    return count
