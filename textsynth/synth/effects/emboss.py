"""Emboss: a bevel lit from one side, lighter on edges facing the light and darker on the others,
inside the glyphs only (the text layer's coverage does not change)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ...checks import check_fields
from ...typedconfig import TypedConfig
from .context import FillContext


@dataclass(frozen=True)
class Config(TypedConfig):
    SECTION = "config.effects.emboss"

    p: float = 0.03
    depth: tuple[float, float] = (0.02, 0.05)  # bevel width, em
    strength: tuple[float, float] = (0.2, 0.45)  # lightening/darkening at the steepest edge

    def check(self, path: str) -> None:
        check_fields(self, path)


@dataclass
class Params:
    angle_deg: float
    depth: float
    strength: float


def draw(rng: np.random.Generator, cfg: Config) -> Params | None:
    if rng.random() >= cfg.p:
        return None
    return Params(float(rng.uniform(0.0, 360.0)), float(rng.uniform(*cfg.depth)), float(rng.uniform(*cfg.strength)))


def apply(p: Params, field: np.ndarray, ctx: FillContext) -> np.ndarray:
    sigma = max(0.5, p.depth * ctx.px_per_em)
    height = cv2.GaussianBlur(ctx.alpha, (0, 0), sigma)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3)
    a = math.radians(p.angle_deg)
    relief = (gx * math.cos(a) + gy * math.sin(a)) * (sigma * 2.0)  # ~[-1, 1] at the steepest edge
    relief = np.clip(relief, -1.0, 1.0)[..., None] * p.strength
    up = field + (255.0 - field) * np.maximum(relief, 0.0)
    return np.clip(up * (1.0 + np.minimum(relief, 0.0)), 0.0, 255.0)
