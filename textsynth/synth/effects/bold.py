"""Synthetic bold: the rasterised glyphs dilated by a disk before the warp, so the strokes thicken
with the text (and the canvas grows by the same reach). Reads `style.strong_p`, `style.strong`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..draws import sometimes

if TYPE_CHECKING:  # config imports the effects package
    from ...config import StyleConfig



@dataclass(frozen=True)
class Params:
    em: float  # dilation radius, em; 0 = off


def draw(rng: np.random.Generator, cfg: StyleConfig) -> Params:
    return Params(sometimes(rng, cfg.strong_p, cfg.strong))


def radius_px(p: Params, size: float) -> int:
    """Dilation radius in raster pixels at font size `size`."""
    px = p.em * size
    return int(round(px)) if px > 0 else 0


def thicken(mask: np.ndarray, r: int) -> np.ndarray:
    if not r:
        return mask
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
