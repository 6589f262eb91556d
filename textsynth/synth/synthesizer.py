"""Sample synthesis: draw every parameter of sample i from rng(seed, i), then render it.

`Synthesizer.draw` is the only place randomness is consumed (plain-data params); `render` is a pure
function of those params and the pools, so a sample re-renders from its metadata and output does not
depend on how samples are spread over workers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from .backgrounds import BackgroundPool, UndecodableImage
from ..config import SynthConfig
from .corpus import Corpus
from ..errors import RenderError
from .effects import FILL, bold, camera, tracking, warp
from .effects import draw_all as draw_effects
from .effects import params as effect_params
from .fill import text_fields
from .fonts import FontPool
from .render import (Layers, composite, effect_extent_em, effect_layers, layout_word, rasterize, render_plain,
                     to_u8)
from ..sample import GREY, Sample
from .skeleton import skeletonize
from .local_contrast import glyph_backgrounds, glyph_regions
from .palette import resolve_colors, resolve_text
from .style import StyleDraw, sample_style

cv2.setNumThreads(1)  # per-sample work is tiny; parallelism comes from processes


@dataclass
class Pools:
    """Everything a worker needs besides the config; pickles once into Ray's object store."""

    fonts: FontPool
    backgrounds: BackgroundPool
    corpus: Corpus

    @classmethod
    def from_config(cls, cfg: SynthConfig) -> "Pools":
        fonts = FontPool.from_config(cfg.fonts)
        return cls(fonts, BackgroundPool.from_config(cfg.background), Corpus.from_config(cfg.corpus, fonts.coverage))


PLAN_SIZE = 48
FILL_HEADROOM = 1.6  # contrast sought past the floor when fill effects will vary the text colour
FLATTEN = (1.0, 0.75, 0.5, 0.25, 0.0)  # background contrast kept when no colour fits every glyph


class _TooWide(Exception):
    pass


@dataclass
class Composited:
    """What `render` composited, per word (source, target): its alpha layers (glyph, border, shadow) and
    its text colour field (h, w, 3) float32; for tests, checks and glyph-mask export, never stored."""

    layers: list[Layers]
    text_fields: list[np.ndarray]


@dataclass
class _Paint:
    """What `_paint` decided for one sample: background, colours, text colour fields, and their records."""

    bg: np.ndarray
    crop: Any
    text_h: float
    colors: dict
    flatten: float
    fields: list
    fill_keep: float
    contrasts: np.ndarray


class Synthesizer:
    """Renders sample i of a recipe; construct once per process (pools are the expensive part)."""

    def __init__(self, cfg: SynthConfig, pools: Pools | None = None):
        self.cfg = cfg  # checked when it was built (TypedConfig)
        self.pools = pools or Pools.from_config(cfg)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, index])

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """All random choices of one sample as plain data."""
        p = self.pools
        text_s, text_t, lang = p.corpus.pair(rng)
        font_index = p.fonts.choose(rng, text_s + text_t)
        return {
            "text_s": text_s, "text_t": text_t, "lang": lang,
            "font_index": font_index, "font": p.fonts.fonts[font_index].name,
            "style": sample_style(rng, self.cfg.style, self.cfg.fonts.size).to_dict(),
            "background": p.backgrounds.sample(rng),
            "effects": draw_effects(rng, self.cfg.effects),
        }

    def sample(self, index: int) -> Sample:
        """Sample `index` of this recipe."""
        return self.sample_layers(index)[0]

    def sample_layers(self, index: int) -> tuple[Sample, Composited]:
        """Sample `index` and what was composited into it; redraws (bounded) when the words do not fit
        max_width."""
        rng = self.rng(index)
        for _ in range(self.cfg.render.max_attempts):
            params = self.draw(rng)
            try:
                s, comp = self.render_layers(params)
            except (_TooWide, UndecodableImage):  # deterministic: the same draws fail on every worker
                continue
            s.meta.update(id=f"{self.cfg.seed}-{index}", seed=self.cfg.seed, index=index)
            return s, comp
        raise RenderError(f"sample {index}: no draw fitted max_width={self.cfg.render.max_width} "
                          f"in {self.cfg.render.max_attempts} attempts (shorten corpus.max_len?)")

    def _plan(self, params: dict, style: StyleDraw, size: int):
        font = self.pools.fonts.pil(params["font_index"], size)
        lays = [layout_word(font, t, tracking.em_for(style.tracking, t) * size, style.underline.em * size)
                for t in (params["text_s"], params["text_t"])]
        wp = warp.make(style.warp, style.oblique.deg, font, [lay.width for lay in lays])
        b = np.stack([warp.word_bounds(wp, lay) for lay in lays])
        ext = effect_extent_em(style) * size + 1.0
        pl, pt, pr, pb = (v * size for v in style.padding)
        canvas = (b[:, 0].min() - pl - ext, b[:, 1].min() - pt - ext, b[:, 2].max() + pr + ext, b[:, 3].max() + pb + ext)
        return font, lays, wp, canvas

    def _colors(self, style: StyleDraw, bg: np.ndarray, regions, headroom: float,
                gb0=None) -> tuple[dict, np.ndarray, float, Any]:
        """Colours against the background under every glyph; a background too contrasty for any one
        colour is flattened toward its mean (a deterministic ladder) until one fits. With fill effects
        on, a colour `headroom` times past the floor is preferred, so the effects have room to act."""
        draw = style.colors
        has_border = style.border.em > 0
        f = bg.astype(np.float32)
        mean = f.reshape(-1, 3).mean(axis=0)
        for keep in FLATTEN:
            flat = bg if keep == 1.0 else np.clip(np.rint(mean + (f - mean) * keep), 0, 255).astype(np.uint8)
            gb = gb0 if keep == 1.0 and gb0 is not None else glyph_backgrounds(flat, regions)
            for boost in ((headroom, 1.0) if headroom > 1.0 else (1.0,)):
                colors = resolve_colors(replace(draw, min_contrast=draw.min_contrast * boost), gb, has_border)
                if colors is not None:
                    return colors, flat, keep, gb
        # a floor above what any colour reaches on this grey (> 4.58 on mid grey): the best side
        return resolve_colors(replace(draw, min_contrast=1.0), gb, has_border), flat, 0.0, gb

    def _paint(self, params: dict, style: StyleDraw, glyphs: list, layers: list, boxes: list, lays: list, wp,
               px_per_em: float) -> "_Paint":
        """Background placement (text scale, smooth surface), colours against every glyph's background,
        and the text colour fields of the fill effects."""
        h, w = glyphs[0].shape
        union = np.maximum(glyphs[0], glyphs[1])
        rows = np.nonzero((union > 127).any(axis=1))[0]
        text_h = float(rows[-1] - rows[0] + 1) if len(rows) else float(h)
        region = cv2.dilate((union > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        regions = [glyph_regions(layers[k].glyph, boxes[k]) for k in (0, 1)]
        both = regions[0] + regions[1]
        draw = style.colors
        seen: dict = {}

        def fits(img: np.ndarray) -> bool:  # one text colour can reach the floor on this placement
            seen["img"], seen["gb"] = img, glyph_backgrounds(img, both)
            return resolve_text(draw, seen["gb"]) is not None

        bg, crop = self.pools.backgrounds.apply(params["background"], h, w, region, text_h, fits)
        fx = params.get("effects")
        headroom = FILL_HEADROOM if any(effect_params(n, fx) for n in FILL) else 1.0
        colors, bg, flatten, gb = self._colors(style, bg, both, headroom,
                                               seen["gb"] if seen.get("img") is bg else None)
        fields, fill_keep, contrasts, second = text_fields(
            fx, colors["text"], draw, bg, [layers[0].glyph, layers[1].glyph],
            [lay.box for lay in lays], wp, lays, px_per_em, region, regions, gb)
        if second is not None:
            colors["text2"] = [int(round(v)) for v in second]  # the gradient's other end
        return _Paint(bg, crop, text_h, colors, flatten, fields, fill_keep, contrasts)

    def render(self, params: dict[str, Any]) -> Sample:
        """Render the eight images of a drawn sample; pure in (params, config, pools)."""
        return self.render_layers(params)[0]

    def render_layers(self, params: dict[str, Any]) -> tuple[Sample, Composited]:
        """`render`, plus each word's layers and text colour field as composited."""
        rcfg = self.cfg.render
        style = StyleDraw.from_dict(params["style"])
        # fixed height: plan at a reference size first (its font object is cached), then re-plan at
        # the raster size that lands the canvas near the output height
        size = PLAN_SIZE if rcfg.height else max(6, int(round(style.size)))
        font, lays, wp, c = self._plan(params, style, size)
        if rcfg.height:
            size = max(6, int(round(size * rcfg.height / (c[3] - c[1]))))
            font, lays, wp, c = self._plan(params, style, size)
            scale = rcfg.height / (c[3] - c[1])
            h = rcfg.height
            m = rcfg.width_multiple
            w = max(m, math.ceil(math.ceil((c[2] - c[0]) * scale - 1e-6) / m) * m)
            # widen the canvas evenly so the width lands on the multiple (batches of one width then
            # need no resize in the loader)
            extra = (w / scale - (c[2] - c[0])) / 2
            c = (c[0] - extra, c[1], c[2] + extra, c[3])
        else:
            scale = 1.0
            h, w = math.ceil(c[3] - c[1]), math.ceil(c[2] - c[0])
        if w > rcfg.max_width:
            raise _TooWide
        wp.origin, wp.scale = (c[0], c[1]), scale
        px_per_em = size * scale

        glyphs = []
        for lay in lays:
            free = tracking.em_for(style.tracking, lay.text) == 0
            mask, ox, oy = rasterize(font, lay, style.underline.em * size, free, bold.radius_px(style.bold, size))
            glyphs.append(warp.warp_mask(mask, wp, lay, ox, oy, h, w))
        layers = [effect_layers(g, style, px_per_em) for g in glyphs]

        boxes = [warp.char_boxes(wp, lay) for lay in lays]
        p = self._paint(params, style, glyphs, layers, boxes, lays, wp, px_per_em)
        bg, colors, fields = p.bg, p.colors, p.fields

        i_s = composite(bg, layers[0], colors, fields[0])
        t_f = composite(bg, layers[1], colors, fields[1])
        t_t = composite(np.full((h, w, 3), GREY, np.float32), layers[1], colors, fields[1])
        (i_s, t_b, t_f), (cov_s, cov_t) = camera.apply(
            style.degrade, effect_params("camera", params.get("effects")), [i_s, bg, t_f],
            [layers[0].coverage(), layers[1].coverage()])

        std = self.pools.fonts.standard_for(params["text_t"])
        i_t = render_plain(self.pools.fonts.standard_pil(std, 64), params["text_t"], h, w)
        images = {
            "i_s": i_s, "i_t": i_t, "t_sk": skeletonize(glyphs[1]), "t_t": to_u8(t_t), "t_b": t_b, "t_f": t_f,
            "mask_t": cov_t.astype(np.uint8) * 255, "mask_s": cov_s.astype(np.uint8) * 255,
        }
        meta = {**params, "colors": colors, "raster_size": size, "scale": round(scale, 6),
                "px_per_em": round(px_per_em, 4), "standard_font": std.name,
                "min_glyph_contrast": round(float(p.contrasts.min()), 3) if len(p.contrasts) else None,
                "background_crop": p.crop.to_dict() if p.crop else None, "text_height": round(p.text_h, 1),
                "background_flatten": p.flatten, "fill_keep": p.fill_keep, "boxes_s": boxes[0], "boxes_t": boxes[1]}
        flat = np.asarray(colors["text"], np.float32)
        return Sample(images, meta), Composited(
            layers, [np.broadcast_to(flat, (h, w, 3)) if f is None else f for f in fields])
