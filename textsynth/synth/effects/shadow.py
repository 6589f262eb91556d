"""Drop shadow: the glyphs (with border) shifted and blurred at output resolution, its own layer under
them in `colors.shadow`. Reads `style.shadow_p`, `style.shadow_offset`, `style.shadow_blur`,
`style.shadow_opacity`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # config imports the effects package
    from ...config import StyleConfig



@dataclass(frozen=True)
class Params:
    dx: float  # offset, em
    dy: float
    blur: float  # Gaussian sigma, em
    opacity: float


def draw(rng: np.random.Generator, cfg: StyleConfig) -> Params | None:
    if not rng.random() < cfg.shadow_p:
        return None
    angle = rng.uniform(0, 2 * np.pi)
    dist = float(rng.uniform(*cfg.shadow_offset))
    dx, dy = float(dist * np.cos(angle)), float(dist * np.sin(angle))
    blur = float(rng.uniform(*cfg.shadow_blur))
    return Params(dx, dy, blur, float(rng.uniform(*cfg.shadow_opacity)))


def extent_em(p: Params | None) -> float:
    """How far (em) the shadow reaches beyond what casts it (offset plus four sigmas of blur)."""
    return 0.0 if p is None else max(abs(p.dx), abs(p.dy)) + 4 * p.blur


def layer(union_u8: np.ndarray, p: Params | None, px_per_em: float) -> np.ndarray | None:
    """Shadow alpha (float32 in [0, 1]) cast by `union_u8` (glyphs, with border), or None when off."""
    if p is None:
        return None
    m = np.float32([[1, 0, p.dx * px_per_em], [0, 1, p.dy * px_per_em]])
    s = cv2.warpAffine(union_u8.astype(np.float32) / 255.0, m, (union_u8.shape[1], union_u8.shape[0]),
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    sigma = p.blur * px_per_em
    if sigma >= 0.3:
        s = cv2.GaussianBlur(s, (0, 0), sigma)
    return np.clip(s * p.opacity, 0.0, 1.0)

