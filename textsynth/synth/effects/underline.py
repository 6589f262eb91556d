"""Underline: a bar under the word's ink, drawn into the glyph raster (so it warps and is bolded with
the glyphs) and counted in the word's box. Reads `style.underline_p`, `style.underline_thickness`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import ImageDraw

from ..draws import sometimes

if TYPE_CHECKING:  # config imports the effects package
    from ...config import StyleConfig



@dataclass(frozen=True)
class Params:
    em: float  # thickness, em; 0 = off


def draw(rng: np.random.Generator, cfg: StyleConfig) -> Params:
    return Params(sometimes(rng, cfg.underline_p, cfg.underline_thickness))


def span(descent: float, thickness: float) -> tuple[float, float]:
    """Top and bottom (text space, baseline y=0) of a bar `thickness` px thick below the baseline."""
    top = max(1.0, 0.35 * descent)
    return top, top + thickness if thickness > 0 else top


def paint(draw: ImageDraw.ImageDraw, descent: float, ink: np.ndarray, thickness: float, ox: float, oy: float) -> None:
    """Draw the bar under the solid ink boxes into a raster whose origin is (ox, oy) in text space."""
    if thickness <= 0:
        return
    top, bottom = span(descent, thickness)
    solid = ink[ink[:, 2] > ink[:, 0]]
    draw.rectangle([float(solid[:, 0].min()) - ox, top - oy, float(solid[:, 2].max()) - ox, bottom - oy], fill=255)
