"""Per-glyph legibility: the background under each glyph, and the contrast each glyph actually gets.

A word over a background that is dark on one side and bright on the other can keep a good average
contrast while one glyph vanishes; colours are therefore chosen against every glyph's own background.
Glyphs are held as one flat pixel-index array with group offsets, so all statistics are vectorised.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .colorspace import _LIN, _W, _ratio, luminance


_LUM_R, _LUM_G, _LUM_B = (_LIN * w for w in _W)  # per-channel luminance lookup tables


@dataclass
class GlyphPixels:
    """Core pixels (alpha >= 0.5, or any ink for hairline glyphs) of each glyph, as flat indices."""

    idx: np.ndarray  # flat pixel indices, glyph after glyph
    starts: np.ndarray  # offset of each glyph's first pixel in idx
    sizes: np.ndarray

    def __add__(self, other: "GlyphPixels") -> "GlyphPixels":
        return GlyphPixels(np.concatenate([self.idx, other.idx]),
                           np.concatenate([self.starts, other.starts + len(self.idx)]),
                           np.concatenate([self.sizes, other.sizes]))

    def __len__(self) -> int:
        return len(self.sizes)


def glyph_regions(alpha: np.ndarray, boxes: list[list[float]]) -> GlyphPixels:
    h, w = alpha.shape
    solid = [b for b in boxes if b]
    if not solid:
        z = np.zeros(0, np.int64)
        return GlyphPixels(z, z, z)
    b = np.array(solid, np.float64)
    ya, yb = np.maximum(0, np.floor(b[:, 1])), np.minimum(h, np.ceil(b[:, 3]) + 1)
    xa, xb = np.maximum(0, np.floor(b[:, 0])), np.minimum(w, np.ceil(b[:, 2]) + 1)
    ys, xs = np.nonzero(alpha >= 0.5)
    inside = ((ys[None] >= ya[:, None]) & (ys[None] < yb[:, None])
              & (xs[None] >= xa[:, None]) & (xs[None] < xb[:, None]))  # (boxes, pixels)
    flat = ys * w + xs
    parts = []
    for i in range(len(b)):
        p = flat[inside[i]]
        if not len(p):  # a hairline glyph: any ink in its box
            a = alpha[int(ya[i]):int(yb[i]), int(xa[i]):int(xb[i])]
            yy, xx = np.nonzero(a > 0)
            p = (yy + int(ya[i])) * w + xx + int(xa[i])
        if len(p):
            parts.append(p)
    sizes = np.array([len(p) for p in parts], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return GlyphPixels(np.concatenate(parts) if parts else np.zeros(0, np.int64), starts, sizes)


@dataclass
class GlyphBackground:
    """Per glyph: mean background colour, its luminance, and the 10th/90th luminance percentiles."""

    mean_rgb: np.ndarray  # (n, 3)
    lum_mean: np.ndarray  # (n,)
    lum_lo: np.ndarray
    lum_hi: np.ndarray


def _means(img: np.ndarray, g: GlyphPixels) -> np.ndarray:
    px = img.reshape(-1, img.shape[-1])[g.idx].astype(np.float64)
    return np.add.reduceat(px, g.starts, axis=0) / g.sizes[:, None]


def glyph_backgrounds(bg: np.ndarray, g: GlyphPixels) -> GlyphBackground:
    if not len(g):
        z = np.zeros(0)
        return GlyphBackground(np.zeros((0, 3)), z, z, z)
    px = bg.reshape(-1, 3)[g.idx]
    means = np.add.reduceat(px.astype(np.float64), g.starts, axis=0) / g.sizes[:, None]
    lum = _LUM_R[px[:, 0]] + _LUM_G[px[:, 1]] + _LUM_B[px[:, 2]]
    srt = np.sort(lum + np.repeat(np.arange(len(g), dtype=np.float64) * 2.0, g.sizes))  # glyph by glyph
    srt -= np.repeat(np.arange(len(g), dtype=np.float64) * 2.0, g.sizes)
    lo = srt[g.starts + np.floor(0.1 * (g.sizes - 1)).astype(np.int64)]  # nearest-rank percentiles
    hi = srt[g.starts + np.ceil(0.9 * (g.sizes - 1)).astype(np.int64)]
    return GlyphBackground(means, np.atleast_1d(luminance(means)), lo, hi)


def glyph_contrasts(text: np.ndarray, bg: np.ndarray, g: GlyphPixels) -> np.ndarray:
    """WCAG ratio per glyph between the mean text colour and the mean background under its core.
    `text` is one RGB colour or a per-pixel colour field (gradients, shading)."""
    if not len(g):
        return np.zeros(0)
    t = np.asarray(text, np.float64)
    t_mean = _means(t, g) if t.ndim == 3 else t[None, :]
    return np.atleast_1d(_ratio(luminance(t_mean), luminance(_means(bg, g))))
