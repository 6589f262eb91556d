"""Degrade: Gaussian blur and sensor noise of `i_s`, `t_b` and `t_f` alike after compositing (applied
by `camera.apply` in its order); blur grows the masks by its kernel radius, noise is the same field on
all three. Reads `style.blur_p`, `style.blur_sigma`, `style.noise_p`, `style.noise_std`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..draws import sometimes

if TYPE_CHECKING:  # config imports the effects package
    from ...config import StyleConfig



@dataclass(frozen=True)
class Params:
    blur: float  # sigma, px at output resolution; 0 = off
    noise: float  # standard deviation, grey levels; 0 = off
    noise_seed: int  # seeds the noise field (drawn whether or not noise is on)


def draw(rng: np.random.Generator, cfg: StyleConfig) -> Params:
    blur = sometimes(rng, cfg.blur_p, cfg.blur_sigma)
    noise = sometimes(rng, cfg.noise_p, cfg.noise_std)
    return Params(blur, noise, int(rng.integers(2**31)))


def gaussian_radius(sigma: float) -> int:
    """Half-size of the kernel cv2.GaussianBlur uses for float images (ksize = round(8*sigma+1)|1)."""
    return (int(round(sigma * 8 + 1)) | 1) // 2


def blur(p: Params, images: list[np.ndarray]) -> tuple[list[np.ndarray], int | None]:
    """Blurred float images and the radius the coverage masks grow by (None when blur is off)."""
    if not p.blur > 0:
        return images, None
    return [cv2.GaussianBlur(x, (0, 0), p.blur) for x in images], gaussian_radius(p.blur)


def add_noise(p: Params, images: list[np.ndarray]) -> list[np.ndarray]:
    if not p.noise > 0:
        return images
    n = np.random.default_rng(p.noise_seed).standard_normal(images[0].shape, dtype=np.float32) * p.noise
    return [x + n for x in images]
