"""One style draw per sample, shared by the source and target words: each text effect's typed params.

`sample_style` calls each effect module's draw in a fixed order (the order fixes the bytes of every
dataset); `StyleDraw.to_dict` is the sample's `style` metadata and `StyleDraw.from_dict` reads it back,
so a sample re-renders from its metadata alone. `palette.resolve_colors` turns the colour draw into
final colours against the background under each glyph deterministically.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .colorspace import contrast_ratio, luminance  # noqa: F401 - re-exported
from ..config import StyleConfig
from .effects import bold, border, degrade, oblique, shadow, tracking, underline, warp
from .palette import ColorDraw, draw_colors


@dataclass(frozen=True)
class StyleDraw:
    """Font size (px at native scale), the effects' params and the colour draw. Lengths are em."""

    size: float
    tracking: tracking.Params
    oblique: oblique.Params
    bold: bold.Params
    underline: underline.Params
    warp: warp.Params
    border: border.Params
    shadow: shadow.Params | None
    padding: tuple[float, float, float, float]  # canvas padding left, top, right, bottom, em
    degrade: degrade.Params
    colors: ColorDraw

    def to_dict(self) -> dict[str, Any]:
        """The `style` metadata (its keys and order are part of the dataset bytes)."""
        w, d = self.warp, self.degrade
        return {
            "size": self.size, "tracking": self.tracking.em, "oblique_deg": self.oblique.deg,
            "strong": self.bold.em, "underline": self.underline.em, "curve": w.curve,
            "rotation_deg": w.rotation_deg, "shear_deg": w.shear_deg, "stretch": w.stretch,
            "perspective": list(w.perspective), "border": self.border.em,
            "shadow": None if self.shadow is None else asdict(self.shadow), "padding": list(self.padding),
            "blur": d.blur, "noise": d.noise, "noise_seed": d.noise_seed, "color_draw": self.colors.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StyleDraw":
        sh = d["shadow"]
        return cls(
            size=d["size"], tracking=tracking.Params(d["tracking"]), oblique=oblique.Params(d["oblique_deg"]),
            bold=bold.Params(d["strong"]), underline=underline.Params(d["underline"]),
            warp=warp.Params(d["rotation_deg"], d["curve"], d["shear_deg"], d["stretch"], tuple(d["perspective"])),
            border=border.Params(d["border"]), shadow=None if sh is None else shadow.Params(**sh),
            padding=tuple(d["padding"]), degrade=degrade.Params(d["blur"], d["noise"], d["noise_seed"]),
            colors=ColorDraw(**d["color_draw"]))


def sample_style(rng: np.random.Generator, cfg: StyleConfig, size_range: tuple[float, float]) -> StyleDraw:
    """Draw every effect of the style from `rng`, in the order the dataset bytes depend on."""
    rotation = warp.draw_rotation(rng, cfg)
    size = float(rng.uniform(*size_range))
    tr, ob, bo, ul = tracking.draw(rng, cfg), oblique.draw(rng, cfg), bold.draw(rng, cfg), underline.draw(rng, cfg)
    wp = warp.draw(rng, cfg, rotation)
    bd = border.draw(rng, cfg)
    padding = tuple(float(rng.uniform(*cfg.padding)) for _ in range(4))
    dg = degrade.draw(rng, cfg)
    sh = shadow.draw(rng, cfg)
    colors = draw_colors(rng, cfg.palette, cfg.color_uniform_p, cfg.min_contrast)
    return StyleDraw(size, tr, ob, bo, ul, wp, bd, sh, padding, dg, colors)  # type: ignore[arg-type]
