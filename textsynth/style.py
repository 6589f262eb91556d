"""One style draw per sample, as plain data, shared by the source and target words.

`sample_style` draws every random number; `resolve_colors` turns the colour draw into final colours
against the local background deterministically, so a sample re-renders from its metadata alone.
"""
from __future__ import annotations

import colorsys
from typing import Any

import numpy as np

from .config import StyleConfig


def sample_style(rng: np.random.Generator, cfg: StyleConfig, size_range: tuple[float, float]) -> dict[str, Any]:
    """Draw geometry, effects and raw colour parameters. Lengths are em (fractions of the font size)."""
    u = lambda r: float(rng.uniform(*r))  # noqa: E731 - tiny local sampler
    on = lambda p: bool(rng.random() < p)  # noqa: E731
    rot = float(np.clip(rng.normal(0, cfg.rotation_std_deg), -cfg.rotation_max_deg, cfg.rotation_max_deg))
    style: dict[str, Any] = {
        "size": u(size_range),
        "tracking": u(cfg.tracking) if on(cfg.tracking_p) else 0.0,
        "oblique_deg": u(cfg.oblique_deg) if on(cfg.oblique_p) else 0.0,
        "strong": u(cfg.strong) if on(cfg.strong_p) else 0.0,
        "underline": u(cfg.underline_thickness) if on(cfg.underline_p) else 0.0,
        "curve": u(cfg.curve) * float(rng.choice([-1.0, 1.0])) if on(cfg.curve_p) else 0.0,
        "rotation_deg": rot,
        "shear_deg": float(np.clip(rng.normal(0, cfg.shear_std_deg), -20, 20)),
        "stretch": float(np.clip(rng.normal(1.0, cfg.stretch_std), 0.6, 1.6)),
        "perspective": ([float(np.clip(rng.normal(0, cfg.perspective_std), -0.15, 0.15)) for _ in range(2)]
                        if on(cfg.perspective_p) else [0.0, 0.0]),
        "border": u(cfg.border) if on(cfg.border_p) else 0.0,
        "shadow": None,
        "padding": [u(cfg.padding) for _ in range(4)],  # left, top, right, bottom
        "blur": u(cfg.blur_sigma) if on(cfg.blur_p) else 0.0,
        "noise": u(cfg.noise_std) if on(cfg.noise_p) else 0.0,
        "noise_seed": int(rng.integers(2**31)),
    }
    if on(cfg.shadow_p):
        angle = rng.uniform(0, 2 * np.pi)
        dist = u(cfg.shadow_offset)
        style["shadow"] = {"dx": float(dist * np.cos(angle)), "dy": float(dist * np.sin(angle)),
                           "blur": u(cfg.shadow_blur), "opacity": u(cfg.shadow_opacity)}
    style["color_draw"] = {
        "uniform": on(cfg.color_uniform_p),
        "rgb": [float(v) for v in rng.random(3)],  # uniform-RGB candidate, or hue/sat/light draw
        "light_u": float(rng.random()),  # picks light or dark text when both reach the contrast floor
        "border_rgb": [float(v) for v in rng.random(3)],
        "shadow_v": float(rng.uniform(0.0, 0.25)),
        "min_contrast": cfg.min_contrast,
    }
    return style


_LIN = ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4
_LIN[: 11] = np.arange(11) / 255.0 / 12.92  # sRGB linear segment (c <= 0.04045)
_W = np.array([0.2126, 0.7152, 0.0722])


def luminance(rgb: np.ndarray) -> np.ndarray | float:
    """WCAG relative luminance of sRGB colours given in 0..255 (last axis = RGB)."""
    c = np.asarray(rgb, np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    out = lin @ _W
    return float(out) if np.ndim(out) == 0 else out


def _ratio(l1: np.ndarray | float, l2: float) -> np.ndarray | float:
    """WCAG contrast ratio of two relative luminances."""
    return (np.maximum(l1, l2) + 0.05) / (np.minimum(l1, l2) + 0.05)


def contrast_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    return _ratio(luminance(a), luminance(b))


_MIX = np.linspace(0.0, 1.0, 257)[:, None]


def luminance_range(pixels: np.ndarray, q: float = 10.0) -> tuple[float, float]:
    """Low and high luminance percentiles of RGB uint8 pixels: textured backgrounds need text that
    stands out from their extremes, not just from their mean."""
    lum = _LIN[pixels.reshape(-1, 3)] @ _W
    lo, hi = np.percentile(lum, [q, 100.0 - q])
    return float(lo), float(hi)


def _reach_contrast(color: np.ndarray, l_against: float, ratio: float, light: bool) -> np.ndarray:
    """Mix `color` toward white or black just enough to reach `ratio` against luminance `l_against`."""
    target = np.full(3, 255.0 if light else 0.0)
    cands = color * (1 - _MIX) + target * _MIX  # luminance is monotonic along the mix: first hit wins
    lum = luminance(cands)
    ok = np.nonzero((_ratio(lum, l_against) >= ratio) & ((lum > l_against) == light))[0]
    return cands[ok[0]] if len(ok) else target


def _pick(color: np.ndarray, l_lo: float, l_hi: float, ratio: float, light_u: float,
          l_mean: float) -> tuple[np.ndarray, bool]:
    """Light text must beat the background's bright end, dark text its dark end; where both can,
    the side with more room is favoured, as on real signage."""
    room_light = 1.05 / (l_hi + 0.05)
    room_dark = (l_lo + 0.05) / 0.05
    if room_light >= ratio and room_dark >= ratio:
        light = light_u < np.log(room_light) / (np.log(room_light) + np.log(room_dark))
    elif room_light >= ratio or room_dark >= ratio:
        light = room_light >= ratio
    elif l_lo != l_mean or l_hi != l_mean:  # a background spanning dark to bright: settle for its mean
        return _pick(color, l_mean, l_mean, ratio, light_u, l_mean)
    else:  # a floor above what any colour reaches (> 4.58 on mid grey): the best side, at full strength
        light = room_light >= room_dark
        return np.full(3, 255.0 if light else 0.0), light
    return _reach_contrast(color, l_hi if light else l_lo, ratio, light), light


def resolve_colors(draw: dict[str, Any], bg_mean: np.ndarray, lum_range: tuple[float, float],
                   has_border: bool) -> dict[str, list[int]]:
    """Final text, border and shadow colours (0..255 ints): the text meets the contrast floor against
    the background's luminance range under the words, the border against the text."""
    bg_mean = np.asarray(bg_mean, np.float64)
    ratio = float(draw["min_contrast"])
    r = np.array(draw["rgb"], np.float64)
    if draw["uniform"]:
        base = r * 255.0
    else:  # a colour related to the background: its hue, a drawn saturation and value
        h, _, _ = colorsys.rgb_to_hsv(*(bg_mean / 255.0))
        hue = (h + (r[0] - 0.5) * 0.3) % 1.0
        base = np.array(colorsys.hsv_to_rgb(hue, r[1] * 0.8, r[2])) * 255.0
    l_mean = luminance(bg_mean)
    lo, hi = min(lum_range[0], l_mean), max(lum_range[1], l_mean)  # a few bright/dark outliers move the mean past a percentile
    text, light = _pick(base, lo, hi, ratio, draw["light_u"], l_mean)
    text = np.round(text)
    reached = _ratio(luminance(text), hi if light else lo) >= ratio * 0.98
    against = (hi if light else lo) if reached else l_mean
    # rounding can cost a hair of contrast: nudge until the floor holds on integer colours
    while _ratio(luminance(text), against) < ratio and not (text == (255 if light else 0)).all():
        text = np.clip(text + (1 if light else -1), 0, 255)
    out = {"text": [int(v) for v in text]}
    if has_border:
        l_text = luminance(text)
        border, _ = _pick(np.array(draw["border_rgb"]) * 255.0, l_text, l_text, ratio, 1.0 - draw["light_u"], l_text)
        out["border"] = [int(v) for v in np.clip(np.round(border), 0, 255)]
    out["shadow"] = [int(round(v)) for v in bg_mean * draw["shadow_v"]]
    return out
