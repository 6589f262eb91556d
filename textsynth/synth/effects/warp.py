"""Warp: one geometric transform of text space shared by both words (rotation, shear plus the oblique
slant, horizontal stretch, an arc curve, perspective), applied once per word: a homography, or for
curved text one remap with the curve folded in. Reads `style.rotation_std_deg`, `style.rotation_max_deg`,
`style.curve_p`, `style.curve`, `style.shear_std_deg`, `style.stretch_std`, `style.perspective_p`,
`style.perspective_std`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import ImageFont

if TYPE_CHECKING:  # config imports the effects package
    from ...config import StyleConfig
    from ..render import WordLayout


@dataclass(frozen=True)
class Params:
    rotation_deg: float
    curve: float  # arc sagitta, em, signed; 0 = straight
    shear_deg: float
    stretch: float  # horizontal zoom
    perspective: tuple[float, float]  # h31, h32 in units of the text box


def draw_rotation(rng: np.random.Generator, cfg: StyleConfig) -> float:
    """The rotation, drawn on its own: it comes first in a sample's style draw (before the font size)."""
    return float(np.clip(rng.normal(0, cfg.rotation_std_deg), -cfg.rotation_max_deg, cfg.rotation_max_deg))


def draw(rng: np.random.Generator, cfg: StyleConfig, rotation_deg: float) -> Params:
    """The rest of the warp: curve, shear, stretch, perspective (in that order)."""
    curve = float(rng.uniform(*cfg.curve)) * float(rng.choice([-1.0, 1.0])) if rng.random() < cfg.curve_p else 0.0
    shear = float(np.clip(rng.normal(0, cfg.shear_std_deg), -20, 20))
    stretch = float(np.clip(rng.normal(1.0, cfg.stretch_std), 0.6, 1.6))
    persp = ((float(np.clip(rng.normal(0, cfg.perspective_std), -0.15, 0.15)),
              float(np.clip(rng.normal(0, cfg.perspective_std), -0.15, 0.15)))
             if rng.random() < cfg.perspective_p else (0.0, 0.0))
    return Params(rotation_deg, curve, shear, stretch, persp)


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


def make(p: Params, oblique_deg: float, font: ImageFont.FreeTypeFont, widths: list[float]) -> Warp:
    """The warp of words of advance `widths` in `font`; the oblique slant adds to the shear."""
    ascent, descent = font.getmetrics()
    em = font.size
    rot = math.radians(p.rotation_deg)
    shear = math.tan(math.radians(p.shear_deg + oblique_deg))
    rmat = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    linear = rmat @ np.array([[1.0, -shear], [0.0, 1.0]]) @ np.diag([p.stretch, 1.0])
    return Warp(centre_y=(descent - ascent) / 2.0, radius=max(max(widths) / 2.0, em / 2.0),
                half_h=(ascent + descent) / 2.0, curve_px=p.curve * em, linear=linear,
                persp=(p.perspective[0], p.perspective[1]))


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
    """A word's raster (origin ox, oy in text space) warped onto the (h, w) canvas."""
    if warp.curve_px:
        mx, my = warp.inverse_maps(lay.width, ox, oy, h, w)
        return cv2.remap(mask, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.warpPerspective(mask, warp.homography(lay.width, ox, oy), (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
