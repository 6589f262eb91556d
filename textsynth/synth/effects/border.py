"""Border (outline): the warped glyphs dilated by a disk at output resolution, its own layer under the
glyphs in `colors.border`. Reads `style.border_p`, `style.border`."""
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
    em: float  # width, em; 0 = off


def draw(rng: np.random.Generator, cfg: StyleConfig) -> Params:
    return Params(sometimes(rng, cfg.border_p, cfg.border))


def extent_em(p: Params) -> float:
    """How far (em) the border reaches beyond the glyphs."""
    return p.em


def layer(glyph_u8: np.ndarray, p: Params, px_per_em: float) -> tuple[np.ndarray | None, np.ndarray]:
    """(border alpha or None, the uint8 union of glyphs and border the shadow is cast from)."""
    if p.em <= 0:
        return None, glyph_u8
    r = max(1, int(round(p.em * px_per_em)))
    b = cv2.dilate(glyph_u8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return b.astype(np.float32) / 255.0, b
