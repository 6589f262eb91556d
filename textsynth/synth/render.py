"""Lay out, rasterise and composite two words; the effects' own steps live in `effects/`.

Geometry lives in a text-space coordinate system (font pixels, baseline at y=0) and is warped once
(`effects/warp.py`). Both words share the font, the warp, the effects and the canvas, so source and
target differ only in their glyphs.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..scripts import needs_shaping
from .effects import bold, border, shadow, underline

if TYPE_CHECKING:
    from .style import StyleDraw

FEATURES = ["-liga", "-clig", "-dlig", "-calt"]  # per-character drawing must match whole-string advances


@dataclass
class WordLayout:
    """Pen positions and ink boxes of one word in text space (px at the raster size, baseline y=0)."""

    text: str
    xs: np.ndarray  # pen x of each character
    ink: np.ndarray  # (n, 4) ink boxes x0, y0, x1, y1 (empty boxes for spaces)
    width: float  # advance width including tracking
    box: tuple[float, float, float, float]  # union of the line box and all ink, x0, y0, x1, y1


@functools.lru_cache(maxsize=1 << 16)
def _glyph(font: ImageFont.FreeTypeFont, ch: str) -> tuple[float, tuple[int, int, int, int] | None]:
    """Advance and baseline-anchored ink box of one character (cached: layouts repeat letters)."""
    adv = font.getlength(ch, features=FEATURES)
    return adv, (None if ch.isspace() else font.getbbox(ch, anchor="ls", features=FEATURES))


@functools.lru_cache(maxsize=1 << 16)
def _pair(font: ImageFont.FreeTypeFont, pair: str) -> float:
    return font.getlength(pair, features=FEATURES)


def layout_word(font: ImageFont.FreeTypeFont, text: str, tracking_px: float, underline_px: float) -> WordLayout:
    """Advances with pair kerning (len(ab) - len(b) = advance of a + kern(a, b)), plus extra tracking.

    A word that needs shaping (Arabic, Hebrew, Indic, Thai...) is laid out as one shaped run with no
    tracking; its characters then all get the whole word's ink box (no per-glyph positions)."""
    ascent, descent = font.getmetrics()
    if needs_shaping(text):
        return _shaped_layout(font, text, underline_px)
    n = len(text)
    xs = np.empty(n, np.float64)
    ink = np.zeros((n, 4), np.float64)
    x = 0.0
    for i, ch in enumerate(text):
        adv, bbox = _glyph(font, ch)
        if i:
            x += _pair(font, text[i - 1: i + 1]) - adv + tracking_px
        xs[i] = x
        if bbox is not None:
            ink[i] = (x + bbox[0], bbox[1], x + bbox[2], bbox[3])
    width = (x + _glyph(font, text[-1])[0]) if n else 0.0
    solid = ink[(ink[:, 2] > ink[:, 0])]
    x0 = min(0.0, float(solid[:, 0].min()) if len(solid) else 0.0)
    x1 = max(width, float(solid[:, 2].max()) if len(solid) else width)
    y0 = min(-float(ascent), float(solid[:, 1].min()) if len(solid) else 0.0)
    y1 = max(float(descent), float(solid[:, 3].max()) if len(solid) else 0.0, underline.span(descent, underline_px)[1])
    return WordLayout(text, xs, ink, width, (x0, y0, x1, y1))


def _shaped_layout(font: ImageFont.FreeTypeFont, text: str, underline_px: float) -> WordLayout:
    ascent, descent = font.getmetrics()
    width = font.getlength(text)
    x0, y0, x1, y1 = font.getbbox(text, anchor="ls")
    n = len(text)
    ink = np.tile(np.array([x0, y0, x1, y1], np.float64), (n, 1))
    box = (min(0.0, x0), min(-float(ascent), y0), max(width, x1),
           max(float(descent), y1, underline.span(descent, underline_px)[1]))
    return WordLayout(text, np.zeros(n, np.float64), ink, width, box)


def rasterize(font: ImageFont.FreeTypeFont, lay: WordLayout, underline_px: float, tracking_free: bool,
              bold_r: int = 0) -> tuple[np.ndarray, float, float]:
    """Draw the word's glyphs (and underline, and synthetic bold of radius `bold_r` px) into an L image;
    returns (mask, x_origin, y_origin) of the image in text space."""
    pad = 2 + bold_r
    bx0, by0, bx1, by1 = lay.box
    ox, oy = math.floor(bx0) - pad, math.floor(by0) - pad
    w, h = math.ceil(bx1) + pad - ox, math.ceil(by1) + pad - oy
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    if needs_shaping(lay.text):  # one shaped run (raqm), font defaults: joining and ligatures kept
        draw.text((-ox, -oy), lay.text, font=font, fill=255, anchor="ls")
    elif tracking_free:  # one call draws the word with the same advances the layout computed
        draw.text((lay.xs[0] - ox, -oy), lay.text, font=font, fill=255, anchor="ls", features=FEATURES)
    else:
        for ch, x in zip(lay.text, lay.xs):
            if not ch.isspace():
                draw.text((x - ox, -oy), ch, font=font, fill=255, anchor="ls", features=FEATURES)
    underline.paint(draw, font.getmetrics()[1], lay.ink, underline_px, ox, oy)
    return bold.thicken(np.asarray(img), bold_r), float(ox), float(oy)


@dataclass
class Layers:
    """Per-word alpha layers at output resolution, float32 in [0, 1]."""

    glyph: np.ndarray
    border: np.ndarray | None
    shadow: np.ndarray | None

    def coverage(self) -> np.ndarray:
        cov = self.glyph > 0
        if self.border is not None:
            cov |= self.border > 0
        if self.shadow is not None:
            cov |= self.shadow > 0
        return cov


def effect_layers(glyph_u8: np.ndarray, style: StyleDraw, px_per_em: float) -> Layers:
    """A word's glyph alpha with its border and shadow layers, all at output resolution."""
    border_a, union = border.layer(glyph_u8, style.border, px_per_em)
    return Layers(glyph_u8.astype(np.float32) / 255.0, border_a, shadow.layer(union, style.shadow, px_per_em))


def effect_extent_em(style: StyleDraw) -> float:
    """How far (em) border, shadow and bold reach beyond the glyphs, so the canvas never clips them."""
    return border.extent_em(style.border) + shadow.extent_em(style.shadow) + style.bold.em


def composite(base: np.ndarray, layers: Layers, colors: dict, text: np.ndarray | None = None) -> np.ndarray:
    """Alpha-composite shadow, border, glyph over base (float32). Zero alpha leaves base exactly unchanged.
    `text` is an optional per-pixel text colour field (fill effects) replacing colors["text"]."""
    out = base.astype(np.float32, copy=True)
    for alpha, key in ((layers.shadow, "shadow"), (layers.border, "border"), (layers.glyph, "text")):
        if alpha is None:
            continue
        c = text if key == "text" and text is not None else np.asarray(colors[key], np.float32)
        out += (c - out) * alpha[..., None]
    return out


def to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_plain(font: ImageFont.FreeTypeFont, text: str, h: int, w: int, grey: int = 127) -> np.ndarray:
    """i_t: the word in a plain font, black on grey, horizontal, centred and fitted inside (h, w)."""
    feats = None if needs_shaping(text) else FEATURES
    x0, y0, x1, y1 = font.getbbox(text, anchor="ls", features=feats)
    ascent, descent = font.getmetrics()
    ink_h = max(y1, descent) - min(y0, -ascent)
    ink_w = max(x1 - x0, 1)
    scale = min(0.8 * h / ink_h, 0.94 * w / ink_w)
    size = max(4, int(font.size * scale))
    f = font.font_variant(size=size)
    x0, y0, x1, y1 = f.getbbox(text, anchor="ls", features=feats)
    ascent, descent = f.getmetrics()
    top, bottom = min(y0, -ascent), max(y1, descent)
    img = Image.new("RGB", (w, h), (grey, grey, grey))
    ImageDraw.Draw(img).text(((w - (x1 - x0)) / 2 - x0, (h - (bottom - top)) / 2 - top), text, font=f,
                             fill=(0, 0, 0), anchor="ls", features=feats)
    return np.asarray(img)
