"""Camera effects applied identically to i_s, t_b and t_f after compositing: Gaussian blur and sensor
noise (drawn by `degrade`), motion blur, defocus blur and JPEG compression (drawn here).

Each spreads text into nearby pixels, so the coverage masks grow by the effect's reach (kernel radius;
for JPEG every 8x8 block the text touches, encoded 4:4:4 so blocks do not share chroma): outside the
masks i_s, t_f and t_b stay equal."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ...checks import check_fields
from ...typedconfig import TypedConfig
from . import degrade


@dataclass(frozen=True)
class Config(TypedConfig):
    SECTION = "config.effects.camera"

    jpeg_p: float = 0.1
    jpeg_quality: tuple[float, float] = (40.0, 90.0)
    motion_p: float = 0.03
    motion_length: tuple[float, float] = (3.0, 9.0)  # px at output resolution
    defocus_p: float = 0.03
    defocus_radius: tuple[float, float] = (1.0, 2.5)  # px at output resolution

    def check(self, path: str) -> None:
        check_fields(self, path)


@dataclass
class Params:
    jpeg_quality: int  # 0 = off
    motion_length: float  # 0 = off
    motion_angle_deg: float
    defocus_radius: float  # 0 = off


def draw(rng: np.random.Generator, cfg: Config) -> Params | None:
    u = rng.random(3)
    q = int(round(rng.uniform(*cfg.jpeg_quality))) if u[0] < cfg.jpeg_p else 0
    m = float(rng.uniform(*cfg.motion_length)) if u[1] < cfg.motion_p else 0.0
    ang = float(rng.uniform(0.0, 180.0))
    d = float(rng.uniform(*cfg.defocus_radius)) if u[2] < cfg.defocus_p else 0.0
    return Params(q, m, ang, d) if (q or m or d) else None


def _grow(covs: list[np.ndarray], r: int) -> list[np.ndarray]:
    k = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    return [cv2.dilate(c.astype(np.uint8), k) > 0 for c in covs]


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    n = int(math.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    a = math.radians(angle_deg)
    for t in np.linspace(-length / 2, length / 2, 4 * n):
        k[int(round(c + t * math.sin(a))), int(round(c + t * math.cos(a)))] = 1.0
    return k / k.sum()


def disk_kernel(radius: float) -> np.ndarray:
    r = int(math.ceil(radius))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    k = (x * x + y * y <= radius * radius + 0.5).astype(np.float32)
    return k / k.sum()


def apply(dg: degrade.Params, p: Params | None, images: list[np.ndarray], covs: list[np.ndarray]):
    """images: (h, w, 3) i_s, t_b, t_f (float32 or uint8); covs: bool coverage masks. Returns uint8
    images and masks. Order: Gaussian blur, motion, defocus, noise, JPEG."""
    if not (dg.blur > 0 or dg.noise > 0 or p is not None):
        return [x if x.dtype == np.uint8 else np.clip(np.rint(x), 0, 255).astype(np.uint8) for x in images], covs
    images = [x.astype(np.float32) for x in images]
    images, r = degrade.blur(dg, images)
    if r is not None:
        covs = _grow(covs, r)
    if p is not None and p.motion_length:
        k = motion_kernel(p.motion_length, p.motion_angle_deg)
        images = [cv2.filter2D(x, -1, k) for x in images]
        covs = _grow(covs, k.shape[0] // 2)
    if p is not None and p.defocus_radius:
        k = disk_kernel(p.defocus_radius)
        images = [cv2.filter2D(x, -1, k) for x in images]
        covs = _grow(covs, k.shape[0] // 2)
    images = degrade.add_noise(dg, images)
    out = [np.clip(np.rint(x), 0, 255).astype(np.uint8) for x in images]
    if p is not None and p.jpeg_quality:
        params = [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality,
                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        out = [cv2.imdecode(cv2.imencode(".jpg", x[..., ::-1], params)[1], cv2.IMREAD_COLOR)[..., ::-1] for x in out]
        covs = [_blocks(c) for c in covs]
    return [np.ascontiguousarray(x) for x in out], covs


def _blocks(cov: np.ndarray) -> np.ndarray:
    """Every 8x8 JPEG block that holds any coverage."""
    h, w = cov.shape
    H, W = -(-h // 8) * 8, -(-w // 8) * 8
    pad = np.zeros((H, W), bool)
    pad[:h, :w] = cov
    blk = pad.reshape(H // 8, 8, W // 8, 8).any(axis=(1, 3))
    return np.repeat(np.repeat(blk, 8, axis=0), 8, axis=1)[:h, :w]
