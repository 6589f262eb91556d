"""Texture modulation: the surface's grain shows through the paint (the background's high-frequency
detail under the text is added to the text colour)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...checks import check_fields
from ...typedconfig import TypedConfig
from .context import FillContext


@dataclass(frozen=True)
class Config(TypedConfig):
    SECTION = "config.effects.texture"

    p: float = 0.15
    strength: tuple[float, float] = (0.3, 0.8)  # share of the background's detail carried into the text

    def check(self, path: str) -> None:
        check_fields(self, path)


@dataclass
class Params:
    strength: float


def draw(rng: np.random.Generator, cfg: Config) -> Params | None:
    if rng.random() >= cfg.p:
        return None
    return Params(float(rng.uniform(*cfg.strength)))


def apply(p: Params, field: np.ndarray, ctx: FillContext) -> np.ndarray:
    detail = ctx.shared.get("texture")
    if detail is None:
        bg = ctx.bg.astype(np.float32)
        detail = ctx.shared["texture"] = bg - cv2.GaussianBlur(bg, (0, 0), 2.0)
    return np.clip(field + p.strength * detail, 0.0, 255.0)
