"""Procedural background textures: small pure functions (rng, size) -> RGB uint8 image."""
from __future__ import annotations

import colorsys
from typing import Callable

import cv2
import numpy as np


def _color(rng: np.random.Generator, v_range: tuple[float, float] = (0.1, 0.95),
           s_range: tuple[float, float] = (0.0, 0.8)) -> np.ndarray:
    """A random RGB colour (float32, 0..255) drawn in HSV so value/saturation ranges are controllable."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*s_range), rng.uniform(*v_range))
    return np.array(rgb, np.float32) * 255


def _fractal(rng: np.random.Generator, size: int, octaves: int = 5, base: int = 4,
             persistence: float = 0.5) -> np.ndarray:
    """Value noise in [0, 1]: random grids upsampled bicubically and summed over octaves."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = base * (2 ** o)
        grid = rng.random((n + 1, n + 1), dtype=np.float32)
        out += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / max(hi - lo, 1e-6)


def _mix(t: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)[..., None]
    return c0 * (1 - t) + c1 * t


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return x, y


def noise(rng, size):
    return _mix(_fractal(rng, size, octaves=int(rng.integers(3, 7))), _color(rng), _color(rng))


def gradient(rng, size):
    x, y = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * x + np.sin(a) * y) / size
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = _mix(t, _color(rng), _color(rng))
    return img + (rng.standard_normal((size, size, 1)).astype(np.float32) * rng.uniform(0, 4))


def wood(rng, size):
    x, y = _grid(size)
    cx, cy = rng.uniform(-size, 2 * size, 2)
    turb = _fractal(rng, size, octaves=4) * rng.uniform(5, 20)
    d = np.sqrt((x - cx) ** 2 * rng.uniform(0.05, 0.3) + (y - cy) ** 2) / size
    rings = 0.5 + 0.5 * np.sin((d * rng.uniform(20, 60) + turb) * 2 * np.pi / 6)
    light = np.array([rng.uniform(170, 220), rng.uniform(120, 160), rng.uniform(70, 110)], np.float32)
    dark = light * rng.uniform(0.45, 0.7)
    return _mix(rings ** 1.5, light, dark)


def marble(rng, size):
    x, y = _grid(size)
    turb = _fractal(rng, size, octaves=6) * rng.uniform(4, 10)
    a = rng.uniform(0, np.pi)
    v = np.abs(np.sin((np.cos(a) * x + np.sin(a) * y) / size * rng.uniform(4, 12) + turb))
    base = _color(rng, (0.75, 0.98), (0.0, 0.15))
    vein = _color(rng, (0.2, 0.6), (0.0, 0.4))
    return _mix((1 - v) ** 4, base, vein)


def paper(rng, size):
    base = _color(rng, (0.8, 0.98), (0.0, 0.2))
    fine = rng.standard_normal((size, size)).astype(np.float32)
    fibers = cv2.GaussianBlur(fine, (0, 0), rng.uniform(0.8, 2.0))
    blotch = _fractal(rng, size, octaves=3) - 0.5
    shade = fibers * rng.uniform(4, 10) + blotch * rng.uniform(10, 30) + fine * rng.uniform(1, 3)
    return base + shade[..., None]


def brick(rng, size):
    x, y = _grid(size)
    bh = rng.uniform(size / 14, size / 6)
    bw = bh * rng.uniform(1.8, 3.0)
    row = np.floor(y / bh)
    xs = x + (row % 2) * bw / 2
    col = np.floor(xs / bw)
    mortar_w = rng.uniform(1.5, 4.0)
    mortar = ((y % bh) < mortar_w) | ((xs % bw) < mortar_w)
    base = np.array([rng.uniform(120, 190), rng.uniform(50, 90), rng.uniform(35, 70)], np.float32)
    ids = (row * 131 + col * 17).astype(np.int64) % 97
    jitter = rng.uniform(0.8, 1.2, 97).astype(np.float32)[ids]
    img = base * jitter[..., None]
    img += (_fractal(rng, size, octaves=6)[..., None] - 0.5) * 40
    mortar_c = _color(rng, (0.55, 0.85), (0.0, 0.1))
    img[mortar] = mortar_c
    return img


def fabric(rng, size):
    x, y = _grid(size)
    f = rng.uniform(0.5, 1.5)
    weave = np.sin(x * f) * np.sin(y * f)
    img = _mix(0.5 + 0.25 * weave + 0.25 * (_fractal(rng, size, octaves=3) - 0.5), _color(rng), _color(rng))
    return img + rng.standard_normal((size, size, 1)).astype(np.float32) * 3


def bokeh(rng, size):
    img = np.empty((size, size, 3), np.float32)
    img[:] = _color(rng, (0.05, 0.5))
    layer = np.zeros_like(img)
    for _ in range(int(rng.integers(15, 50))):
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 30 + 1, size // 8 + 2))
        cv2.circle(layer, c, r, tuple(float(v) for v in _color(rng, (0.5, 1.0)) * rng.uniform(0.2, 0.6)), -1)
    layer = cv2.GaussianBlur(layer, (0, 0), rng.uniform(2, 8))
    return img + layer


def tiles(rng, size):
    x, y = _grid(size)
    t = rng.uniform(size / 10, size / 4)
    grout = rng.uniform(1.5, 4)
    ids = (np.floor(x / t) * 7 + np.floor(y / t) * 13).astype(np.int64) % 53
    c0, c1 = _color(rng), _color(rng)
    pal = np.stack([_mix(np.array(rng.random()), c0, c1) for _ in range(53)])
    img = pal[ids] + (_fractal(rng, size, octaves=5)[..., None] - 0.5) * 20
    img[((x % t) < grout) | ((y % t) < grout)] = _color(rng, (0.3, 0.9), (0.0, 0.2))
    return img


def stripes(rng, size):
    x, y = _grid(size)
    a = rng.uniform(0, np.pi)
    period = rng.uniform(size / 40, size / 6)
    t = ((np.cos(a) * x + np.sin(a) * y) / period) % 1.0
    soft = rng.uniform(0.02, 0.3)
    v = np.clip((np.abs(t - 0.5) - 0.25) / soft + 0.5, 0, 1)
    return _mix(v, _color(rng), _color(rng))


FAMILIES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    f.__name__: f for f in (noise, gradient, wood, marble, paper, brick, fabric, bokeh, tiles, stripes)
}


def make_texture(family: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """Render one texture of the named family as (size, size, 3) uint8."""
    return np.clip(FAMILIES[family](rng, size), 0, 255).astype(np.uint8)
