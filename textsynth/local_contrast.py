"""Per-glyph legibility: the background under each glyph, and the contrast each glyph actually gets.

A word over a background that is dark on one side and bright on the other can keep a good average
contrast while one glyph vanishes; colours are therefore chosen against every glyph's own background.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .colorspace import _LIN, _W, _ratio, luminance


@dataclass
class GlyphRegion:
    """Core pixels (alpha >= 0.5, or any ink for hairline glyphs) of one glyph inside its box."""

    ys: slice
    xs: slice
    core: np.ndarray  # bool, shape of the box slice


def glyph_regions(alpha: np.ndarray, boxes: list[list[float]]) -> list[GlyphRegion]:
    h, w = alpha.shape
    out = []
    for box in boxes:
        if not box:
            continue
        x0, y0, x1, y1 = box
        ys = slice(max(0, math.floor(y0)), min(h, math.ceil(y1) + 1))
        xs = slice(max(0, math.floor(x0)), min(w, math.ceil(x1) + 1))
        a = alpha[ys, xs]
        core = a >= 0.5
        if not core.any():
            core = a > 0
        if core.any():
            out.append(GlyphRegion(ys, xs, core))
    return out


@dataclass
class GlyphBackground:
    """Per glyph: mean background colour, its luminance, and the 10th/90th luminance percentiles."""

    mean_rgb: np.ndarray  # (n, 3)
    lum_mean: np.ndarray  # (n,)
    lum_lo: np.ndarray
    lum_hi: np.ndarray


def glyph_backgrounds(bg: np.ndarray, regions: list[GlyphRegion]) -> GlyphBackground:
    means, lo, hi = [], [], []
    for r in regions:
        px = bg[r.ys, r.xs][r.core]
        means.append(px.reshape(-1, 3).astype(np.float64).mean(axis=0))
        lum = _LIN[np.clip(np.rint(px), 0, 255).astype(np.uint8).reshape(-1, 3)] @ _W
        a, b = np.percentile(lum, [10.0, 90.0])
        lo.append(a)
        hi.append(b)
    m = np.array(means).reshape(-1, 3)
    return GlyphBackground(m, np.atleast_1d(luminance(m)) if len(m) else np.zeros(0), np.array(lo), np.array(hi))


def glyph_contrasts(text: np.ndarray, bg: np.ndarray, regions: list[GlyphRegion]) -> np.ndarray:
    """WCAG ratio per glyph between the mean text colour and the mean background under its core.
    `text` is one RGB colour or a per-pixel colour field (gradients, shading)."""
    out = []
    for r in regions:
        b = bg[r.ys, r.xs][r.core].reshape(-1, 3).astype(np.float64).mean(axis=0)
        t = np.asarray(text, np.float64)
        t = t[r.ys, r.xs][r.core].reshape(-1, 3).mean(axis=0) if t.ndim == 3 else t
        out.append(_ratio(luminance(t), luminance(b)))
    return np.array(out, np.float64)
