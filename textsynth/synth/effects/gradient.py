"""Linear two-colour gradient fill, laid out in text space so it follows the warp (curve, perspective).

Both end colours are resolved against every glyph's background, so each passes the contrast floor."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...checks import check_fields
from ...typedconfig import TypedConfig
from .context import FillContext


@dataclass(frozen=True)
class Config(TypedConfig):
    SECTION = "config.effects.gradient"

    p: float = 0.05
    angle_deg: tuple[float, float] = (0.0, 180.0)  # direction of the colour change in text space

    def check(self, path: str) -> None:
        check_fields(self, path, hi=360.0)


@dataclass
class Params:
    angle_deg: float
    hsv: list[float]  # the second colour's draw, in the first colour's palette scheme


def draw(rng: np.random.Generator, cfg: Config) -> Params | None:
    if rng.random() >= cfg.p:
        return None
    return Params(float(rng.uniform(*cfg.angle_deg)), [float(v) for v in rng.random(3)])


def apply(p: Params, field: np.ndarray, ctx: FillContext, second: np.ndarray) -> np.ndarray:
    """Blend from the text colour to `second` along the drawn direction across the word's box."""
    x, y = ctx.text_xy
    a = math.radians(p.angle_deg)
    c, s = math.cos(a), math.sin(a)
    x0, y0, x1, y1 = ctx.box
    corners = [xx * c + yy * s for xx in (x0, x1) for yy in (y0, y1)]
    lo, hi = min(corners), max(corners)
    t = np.clip((x * c + y * s - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)[..., None]
    return field + (np.asarray(second, np.float32) - field) * t
