"""The text layer's colour field: the resolved text colour changed per pixel by the drawn fill effects.

Effects that would pull a glyph under the contrast floor are toned down toward the flat colour on a
fixed ladder (deterministic), so every glyph keeps the floor whatever effects are on."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .effects import FILL, params
from .effects.context import FillContext
from .colorspace import _ratio, luminance
from .local_contrast import GlyphBackground, glyph_contrasts
from .palette import ColorDraw, resolve_text

KEEP = (1.0, 0.75, 0.5, 0.35, 0.2, 0.1, 0.0)  # share of the effects' change kept, tried in order


def text_fields(fx: dict | None, text: list[int], draw: ColorDraw, bg: np.ndarray, alphas: list[np.ndarray],
                boxes: list[tuple], warp, lays, px_per_em: float, region: np.ndarray, regions: list,
                gb: GlyphBackground):
    """(fields, keep, contrasts, second): per word an (h, w, 3) float32 colour field, or None for flat
    colour; the share of the effects kept; the per-glyph contrasts of both words; the gradient's second
    colour (or None)."""
    flat = np.asarray(text, np.float32)
    active = {name: params(name, fx) for name in FILL}
    active = {k: v for k, v in active.items() if v is not None}
    if not active:
        # flat colour: the per-glyph background means of both words are already known
        return [None, None], 1.0, np.atleast_1d(_ratio(luminance(flat), gb.lum_mean)), None
    second = None
    if "gradient" in active:
        got = resolve_text(replace(draw, hsv=active["gradient"].hsv), gb)
        second = flat if got is None else got[0].astype(np.float32)
    h, w = bg.shape[:2]
    fields = []
    shared: dict = {}
    for k in (0, 1):
        text_xy = None
        if "gradient" in active:
            mx, my = warp.inverse_maps(lays[k].width, 0.0, 0.0, h, w)
            text_xy = (mx, my)
        ctx = FillContext(bg, alphas[k], text_xy, boxes[k], px_per_em, region, shared)
        f = np.broadcast_to(flat, (h, w, 3)).astype(np.float32)
        for name, p in active.items():
            f = FILL[name].apply(p, f, ctx, second) if name == "gradient" else FILL[name].apply(p, f, ctx)
        fields.append(f)
    floor = draw.min_contrast
    for keep in KEEP:
        fk = fields if keep == 1.0 else [flat + (f - flat) * keep for f in fields]
        c = np.concatenate([glyph_contrasts(fk[0], bg, regions[0]), glyph_contrasts(fk[1], bg, regions[1])])
        if keep == 0.0 or not len(c) or c.min() >= floor:
            return fk, keep, c, second
    raise AssertionError("unreachable")  # pragma: no cover
