"""One style draw per sample, as plain data, shared by the source and target words.

`sample_style` draws every random number; `palette.resolve_colors` turns the colour draw into final
colours against the background under each glyph deterministically, so a sample re-renders from its
metadata alone.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .colorspace import contrast_ratio, luminance  # noqa: F401 - re-exported
from ..config import StyleConfig
from .palette import draw_colors


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
    style["color_draw"] = draw_colors(rng, cfg.palette, cfg.color_uniform_p, cfg.min_contrast).to_dict()
    return style
