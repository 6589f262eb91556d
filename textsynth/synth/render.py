"""Apply a drawn style to two words: layout, one warp per word, effects and compositing.

Geometry lives in a text-space coordinate system (font pixels, baseline at y=0) and is warped once:
a homography, or for curved text one remap with the curve folded in. Both words share the font,
the warp, the effects and the canvas, so source and target differ only in their glyphs.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..scripts import needs_shaping

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
    y1 = max(float(descent), float(solid[:, 3].max()) if len(solid) else 0.0, underline_y(descent, underline_px)[1])
    return WordLayout(text, xs, ink, width, (x0, y0, x1, y1))


def _shaped_layout(font: ImageFont.FreeTypeFont, text: str, underline_px: float) -> WordLayout:
    ascent, descent = font.getmetrics()
    width = font.getlength(text)
    x0, y0, x1, y1 = font.getbbox(text, anchor="ls")
    n = len(text)
    ink = np.tile(np.array([x0, y0, x1, y1], np.float64), (n, 1))
    box = (min(0.0, x0), min(-float(ascent), y0), max(width, x1),
           max(float(descent), y1, underline_y(descent, underline_px)[1]))
    return WordLayout(text, np.zeros(n, np.float64), ink, width, box)


def tracking_em(style: dict, text: str) -> float:
    """The letter tracking applied to `text`: none for scripts that need shaping."""
    return 0.0 if needs_shaping(text) else style["tracking"]


def underline_y(descent: float, thickness: float) -> tuple[float, float]:
    top = max(1.0, 0.35 * descent)
    return top, top + thickness if thickness > 0 else top


def rasterize(font: ImageFont.FreeTypeFont, lay: WordLayout, underline_px: float, tracking_free: bool,
              strong_px: float = 0.0) -> tuple[np.ndarray, float, float]:
    """Draw the word's glyphs (and underline, and synthetic bold) into an L image;
    returns (mask, x_origin, y_origin) of the image in text space."""
    bold = int(round(strong_px)) if strong_px > 0 else 0
    pad = 2 + bold
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
    if underline_px > 0:
        top, bottom = underline_y(font.getmetrics()[1], underline_px)
        solid = lay.ink[lay.ink[:, 2] > lay.ink[:, 0]]
        draw.rectangle([float(solid[:, 0].min()) - ox, top - oy, float(solid[:, 2].max()) - ox, bottom - oy], fill=255)
    mask = np.asarray(img)
    if bold:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * bold + 1, 2 * bold + 1)))
    return mask, float(ox), float(oy)


@dataclass
class Warp:
    """Text space -> canvas mapping shared by both words: centre, curve, linear, perspective, scale."""

    centre_y: float  # line-box centre (same for both words)
    radius: float  # half width of the longer word: curve and perspective are normalised by it
    half_h: float
    curve_px: float
    linear: np.ndarray  # 2x2
    persp: tuple[float, float]
    origin: tuple[float, float] = (0.0, 0.0)  # canvas top-left in warped coordinates
    scale: float = 1.0

    def forward(self, x: np.ndarray, y: np.ndarray, word_width: float) -> tuple[np.ndarray, np.ndarray]:
        xc = x - word_width / 2.0
        yc = y - self.centre_y
        if self.curve_px:
            yc = yc + self.curve_px * (1.0 - (xc / self.radius) ** 2)
        X = self.linear[0, 0] * xc + self.linear[0, 1] * yc
        Y = self.linear[1, 0] * xc + self.linear[1, 1] * yc
        w = 1.0 + self.persp[0] * X / self.radius + self.persp[1] * Y / self.half_h
        return (X / w - self.origin[0]) * self.scale, (Y / w - self.origin[1]) * self.scale

    def homography(self, word_width: float, ox: float, oy: float) -> np.ndarray:
        """Raster pixel -> output pixel, valid when there is no curve."""
        t_in = np.array([[1, 0, ox - word_width / 2.0], [0, 1, oy - self.centre_y], [0, 0, 1]], np.float64)
        lin = np.eye(3)
        lin[:2, :2] = self.linear
        persp = np.array([[1, 0, 0], [0, 1, 0], [self.persp[0] / self.radius, self.persp[1] / self.half_h, 1]])
        out = np.array([[self.scale, 0, -self.origin[0] * self.scale],
                        [0, self.scale, -self.origin[1] * self.scale], [0, 0, 1]])
        return out @ persp @ lin @ t_in

    def inverse_maps(self, word_width: float, ox: float, oy: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Output pixel -> raster pixel maps for cv2.remap (used for curved text)."""
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        qx = u / self.scale + self.origin[0]
        qy = v / self.scale + self.origin[1]
        d = 1.0 - self.persp[0] * qx / self.radius - self.persp[1] * qy / self.half_h
        X, Y = qx / d, qy / d
        inv = np.linalg.inv(self.linear)
        xc = inv[0, 0] * X + inv[0, 1] * Y
        yc = inv[1, 0] * X + inv[1, 1] * Y
        yc = yc - self.curve_px * (1.0 - (xc / self.radius) ** 2)
        return ((xc + word_width / 2.0 - ox).astype(np.float32),
                (yc + self.centre_y - oy).astype(np.float32))


def make_warp(style: dict, font: ImageFont.FreeTypeFont, widths: list[float]) -> Warp:
    ascent, descent = font.getmetrics()
    em = font.size
    rot = math.radians(style["rotation_deg"])
    shear = math.tan(math.radians(style["shear_deg"] + style["oblique_deg"]))
    rmat = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    linear = rmat @ np.array([[1.0, -shear], [0.0, 1.0]]) @ np.diag([style["stretch"], 1.0])
    return Warp(centre_y=(descent - ascent) / 2.0, radius=max(max(widths) / 2.0, em / 2.0),
                half_h=(ascent + descent) / 2.0, curve_px=style["curve"] * em, linear=linear,
                persp=(style["perspective"][0], style["perspective"][1]))


def effect_extent_em(style: dict) -> float:
    """How far (em) border and shadow reach beyond the glyphs, so the canvas never clips them."""
    ext = style["border"]
    sh = style["shadow"]
    if sh:
        ext += max(abs(sh["dx"]), abs(sh["dy"])) + 4 * sh["blur"]
    return ext


def word_bounds(warp: Warp, lay: WordLayout) -> np.ndarray:
    """Warped bounding box (x0, y0, x1, y1) of a word's box, edges sampled densely for curves."""
    x0, y0, x1, y1 = lay.box
    t = np.linspace(0.0, 1.0, 33)
    xs = np.concatenate([x0 + (x1 - x0) * t, x0 + (x1 - x0) * t, np.full(33, x0), np.full(33, x1)])
    ys = np.concatenate([np.full(33, y0), np.full(33, y1), y0 + (y1 - y0) * t, y0 + (y1 - y0) * t])
    X, Y = warp.forward(xs, ys, lay.width)
    return np.array([X.min(), Y.min(), X.max(), Y.max()])


def char_boxes(warp: Warp, lay: WordLayout) -> list[list[float]]:
    """Axis-aligned output boxes of each character's warped ink box (empty for spaces)."""
    out = []
    for x0, y0, x1, y1 in lay.ink:
        if x1 <= x0:
            out.append([])
            continue
        X, Y = warp.forward(np.array([x0, x1, x1, x0, (x0 + x1) / 2]), np.array([y0, y0, y1, y1, y0]), lay.width)
        out.append([round(float(v), 1) for v in (X.min(), Y.min(), X.max(), Y.max())])
    return out


def warp_mask(mask: np.ndarray, warp: Warp, lay: WordLayout, ox: float, oy: float, h: int, w: int) -> np.ndarray:
    if warp.curve_px:
        mx, my = warp.inverse_maps(lay.width, ox, oy, h, w)
        return cv2.remap(mask, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.warpPerspective(mask, warp.homography(lay.width, ox, oy), (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


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


def effect_layers(glyph_u8: np.ndarray, style: dict, px_per_em: float) -> Layers:
    """Border by dilation and shadow by shift + blur, both at output resolution."""
    border = None
    union = glyph_u8
    if style["border"] > 0:
        r = max(1, int(round(style["border"] * px_per_em)))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        b = cv2.dilate(glyph_u8, k)
        border = b.astype(np.float32) / 255.0
        union = b
    shadow = None
    sh = style["shadow"]
    if sh:
        m = np.float32([[1, 0, sh["dx"] * px_per_em], [0, 1, sh["dy"] * px_per_em]])
        s = cv2.warpAffine(union.astype(np.float32) / 255.0, m, (union.shape[1], union.shape[0]),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        sigma = sh["blur"] * px_per_em
        if sigma >= 0.3:
            s = cv2.GaussianBlur(s, (0, 0), sigma)
        shadow = np.clip(s * sh["opacity"], 0.0, 1.0)
    return Layers(glyph_u8.astype(np.float32) / 255.0, border, shadow)


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


def gaussian_radius(sigma: float) -> int:
    """Half-size of the kernel cv2.GaussianBlur uses for float images (ksize = round(8*sigma+1)|1)."""
    return (int(round(sigma * 8 + 1)) | 1) // 2


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
