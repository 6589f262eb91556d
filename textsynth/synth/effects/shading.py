"""Shading: the text picks up the background's low-frequency light (a shadow across a sign darkens
its letters too): the colour is scaled by the local/mean luminance ratio of the blurred background."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...checks import check_fields
from ...typedconfig import TypedConfig
from .context import FillContext


@dataclass(frozen=True)
class Config(TypedConfig):
    SECTION = "config.effects.shading"

    p: float = 0.25
    strength: tuple[float, float] = (0.3, 0.9)  # 1 = the text follows the light fully
    sigma: tuple[float, float] = (0.3, 0.8)  # blur of the light field, in text heights (em)

    def check(self, path: str) -> None:
        check_fields(self, path)


@dataclass
class Params:
    strength: float
    sigma: float


def draw(rng: np.random.Generator, cfg: Config) -> Params | None:
    if rng.random() >= cfg.p:
        return None
    return Params(float(rng.uniform(*cfg.strength)), float(rng.uniform(*cfg.sigma)))


def apply(p: Params, field: np.ndarray, ctx: FillContext) -> np.ndarray:
    gain = ctx.shared.get("shading")
    if gain is None:  # the same background under both words: computed once per sample
        grey = ctx.bg.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        h, w = grey.shape
        small = cv2.resize(grey, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), max(0.5, p.sigma * ctx.px_per_em / 4))  # low frequencies only:
        light = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)  # blurred at quarter size
        ref = float(light[ctx.region].mean()) if ctx.region.any() else float(light.mean())
        gain = ctx.shared["shading"] = np.clip(1.0 + p.strength * (light / max(ref, 1.0) - 1.0), 0.4, 1.6)[..., None]
    return np.clip(field * gain, 0.0, 255.0)
