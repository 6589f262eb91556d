"""Text effects, one module each: its config fields, a typed draw from an explicit rng, its apply.

Style effects (tracking, oblique, bold, underline, warp, border, shadow, degrade) read flat
`style.*` recipe keys and are drawn together, in a fixed order, by `synth/style.py` into the sample's
`style` metadata. Optional effects (below) have one `[effects.<name>]` table each and are drawn by
`draw_all` into the `effects` metadata. Fill effects (gradient, shading, texture, emboss) change the
text layer's colour per pixel, so t_f stays the composite of the styled text layer on t_b; camera
effects (camera, with degrade's blur and noise) act identically on i_s, t_b and t_f after compositing
and grow the masks by their reach. See docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...typedconfig import TypedConfig
from . import camera, emboss, gradient, shading, texture

FILL = {"gradient": gradient, "shading": shading, "texture": texture, "emboss": emboss}
ALL = {**FILL, "camera": camera}


@dataclass(frozen=True)
class EffectsConfig(TypedConfig):
    """One table per effect, e.g. [effects.gradient] p = 0.1."""

    SECTION = "config.effects"

    gradient: gradient.Config = field(default_factory=gradient.Config)
    shading: shading.Config = field(default_factory=shading.Config)
    texture: texture.Config = field(default_factory=texture.Config)
    emboss: emboss.Config = field(default_factory=emboss.Config)
    camera: camera.Config = field(default_factory=camera.Config)


def draw_all(rng: np.random.Generator, cfg: EffectsConfig) -> dict[str, Any]:
    """Every effect's parameters (None when off), as plain data for the sample's metadata."""
    out = {}
    for name, mod in ALL.items():
        p = mod.draw(rng, getattr(cfg, name))
        out[name] = None if p is None else dataclasses.asdict(p)
    return out


def params(name: str, drawn: dict[str, Any] | None):
    """The typed parameters of effect `name` back from metadata (None when off or absent)."""
    d = (drawn or {}).get(name)
    return None if d is None else ALL[name].Params(**d)
