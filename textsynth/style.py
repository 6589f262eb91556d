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


def contrast_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    la, lb = luminance(a), luminance(b)
    return (np.maximum(la, lb) + 0.05) / (np.minimum(la, lb) + 0.05)


_MIX = np.linspace(0.0, 1.0, 257)[:, None]


def _reach_contrast(color: np.ndarray, against: np.ndarray, ratio: float, light: bool) -> np.ndarray:
    """Mix `color` toward white or black just enough to reach `ratio` against `against`."""
    if contrast_ratio(color, against) >= ratio and (luminance(color) > luminance(against)) == light:
        return color
    target = np.full(3, 255.0 if light else 0.0)
    cands = color * (1 - _MIX) + target * _MIX  # luminance is monotonic along the mix: first hit wins
    ok = np.nonzero(contrast_ratio(cands, against) >= ratio)[0]
    return cands[ok[0]] if len(ok) else target


def _pick(color: np.ndarray, against: np.ndarray, ratio: float, light_u: float) -> np.ndarray:
    l_bg = luminance(against)
    can_light = ratio * (l_bg + 0.05) - 0.05 <= 1.0
    can_dark = (l_bg + 0.05) / ratio - 0.05 >= 0.0
    if can_light and can_dark:  # prefer the side with more room, as real signage does
        room_light = 1.05 / (l_bg + 0.05)
        room_dark = (l_bg + 0.05) / 0.05
        light = light_u < np.log(room_light) / (np.log(room_light) + np.log(room_dark))
    else:
        light = can_light
    return _reach_contrast(color, against, ratio, light)


def resolve_colors(draw: dict[str, Any], bg_mean: np.ndarray, has_border: bool) -> dict[str, list[int]]:
    """Final text, border and shadow colours (0..255 ints) meeting the contrast floor against bg_mean."""
    bg_mean = np.asarray(bg_mean, np.float64)
    ratio = float(draw["min_contrast"])
    r = np.array(draw["rgb"], np.float64)
    if draw["uniform"]:
        base = r * 255.0
    else:  # a colour related to the background: its hue, a drawn saturation and value
        h, _, _ = colorsys.rgb_to_hsv(*(bg_mean / 255.0))
        hue = (h + (r[0] - 0.5) * 0.3) % 1.0
        base = np.array(colorsys.hsv_to_rgb(hue, r[1] * 0.8, r[2])) * 255.0
    text = np.round(_pick(base, bg_mean, ratio, draw["light_u"]))
    # rounding can cost a hair of contrast: nudge until the floor holds on integer colours
    light = luminance(text) > luminance(bg_mean)
    while contrast_ratio(text, bg_mean) < ratio and not (text == (255 if light else 0)).all():
        text = np.clip(text + (1 if light else -1), 0, 255)
    out = {"text": [int(v) for v in text]}
    if has_border:
        border = np.round(_pick(np.array(draw["border_rgb"]) * 255.0, text, ratio, 1.0 - draw["light_u"]))
        out["border"] = [int(v) for v in np.clip(border, 0, 255)]
    out["shadow"] = [int(round(v)) for v in bg_mean * draw["shadow_v"]]
    return out
