"""The text effects, each on its own: what it promises beyond the shared invariants."""
from __future__ import annotations

import numpy as np

from textsynth.synth.colorspace import contrast_ratio
from textsynth.config import SynthConfig
from textsynth.synth.invariants import check_sample
from textsynth.synth.synthesizer import Synthesizer

from .conftest import FORCED
from .test_local_contrast import glyph_cores, glyph_ratios

NO_CAMERA = {"style.blur_p": 0.0, "style.noise_p": 0.0, "effects.camera.jpeg_p": 0.0,
             "effects.camera.motion_p": 0.0, "effects.camera.defocus_p": 0.0}
OFF = {"effects.shading.p": 0.0, "effects.texture.p": 0.0, "effects.emboss.p": 0.0, **NO_CAMERA}


def test_gradient_runs_between_two_floor_passing_colours_along_the_text(pools_en):
    """Horizontal gradient (angle 0): the target's leftmost glyph is near the first colour, its rightmost
    near the second, on straight and curved text; both colours hold the floor under every glyph."""
    for curve_p in (0.0, 1.0):
        cfg = SynthConfig(seed=41).replace(**OFF, **{"effects.gradient.p": 1.0, "effects.gradient.angle_deg": [0.0, 0.0],
                                                     "style.curve_p": curve_p, "corpus.min_len": 6})
        syn = Synthesizer(cfg, pools_en)
        for i in range(40):
            s, comp = syn.sample_layers(i)
            assert check_sample(s) == []
            c1, c2 = (np.array(s.meta["colors"][k], np.float64) for k in ("text", "text2"))
            alpha = comp.layers[1].glyph
            for c in (c1, c2):  # each end alone would pass the floor under every glyph of both words
                for k, key in ((0, "boxes_s"), (1, "boxes_t")):
                    for ys, xs, core in glyph_cores(comp.layers[k].glyph, s.meta[key]):
                        bg = s.images["t_b"][ys, xs][core].astype(np.float64).mean(axis=0)
                        assert contrast_ratio(c, bg) >= 3.0 * 0.99, s.meta["id"]
            if s.meta["fill_keep"] < 1.0 or np.abs(c1 - c2).max() < 40:
                continue
            field = comp.text_fields[1]
            xs = np.nonzero((alpha >= 1.0).any(axis=0))[0]
            if len(xs) < 2:  # a hairline font: no fully covered pixel to read the colour from
                continue
            left = field[:, xs[0]][alpha[:, xs[0]] >= 1.0].mean(axis=0)
            right = field[:, xs[-1]][alpha[:, xs[-1]] >= 1.0].mean(axis=0)
            assert np.abs(left - c1).max() < np.abs(left - c2).max(), s.meta["id"]
            assert np.abs(right - c2).max() < np.abs(right - c1).max(), s.meta["id"]


def test_shading_follows_the_background_light(pools_en):
    """With shading, text over the darker part of its background is darker than over the brighter part."""
    cfg = SynthConfig(seed=43).replace(**{**OFF, "effects.shading.p": 1.0, "effects.shading.strength": [0.9, 0.9],
                                                 "effects.gradient.p": 0.0})
    syn = Synthesizer(cfg, pools_en)
    agree = total = 0
    for i in range(60):
        s, comp = syn.sample_layers(i)
        assert check_sample(s) == []
        core = comp.layers[1].glyph >= 1.0
        if s.meta["fill_keep"] < 1.0 or core.sum() < 50:
            continue
        bg = s.images["t_b"].astype(np.float64).mean(axis=2)[core]
        txt = comp.text_fields[1].astype(np.float64).mean(axis=2)[core]
        if bg.std() < 8 or txt.std() < 1:
            continue
        total += 1
        agree += np.corrcoef(bg, txt)[0, 1] > 0.3
    assert total >= 10 and agree >= 0.8 * total


def test_every_glyph_holds_the_floor_under_each_fill_effect(pools_en):
    for name in ("gradient", "shading", "texture", "emboss"):
        cfg = SynthConfig(seed=44).replace(**{**OFF, "effects.gradient.p": 0.0, f"effects.{name}.p": 1.0})
        syn = Synthesizer(cfg, pools_en)
        kept = 0
        for i in range(40):
            s, comp = syn.sample_layers(i)
            assert min(glyph_ratios(s, comp)) >= 3.0 * 0.99, (name, s.meta["id"])
            kept += s.meta["fill_keep"] == 1.0
        assert kept >= 20, name  # the effect mostly applies in full


def test_camera_effects_keep_backgrounds_equal_outside_the_grown_masks(pools_en):
    for over in ({"effects.camera.jpeg_p": 1.0}, {"effects.camera.motion_p": 1.0}, {"effects.camera.defocus_p": 1.0}):
        cfg = SynthConfig(seed=45).replace(**{**NO_CAMERA, **over})
        syn = Synthesizer(cfg, pools_en)
        grew = 0
        for i in range(25):
            s, comp = syn.sample_layers(i)
            assert check_sample(s) == [], over
            grew += (s.images["mask_t"] > 0).sum() > comp.layers[1].coverage().sum()
            # the effect really changed the images (not a no-op that passes trivially)
            solid = comp.layers[1].glyph >= 1.0
            if solid.sum() >= 20:
                assert not np.array_equal(s.images["t_f"][solid], np.rint(comp.text_fields[1][solid]).astype(np.uint8))
        assert grew == 25, over


def test_style_metadata_is_the_typed_draw_and_reads_back(pools_en):
    """The `style` metadata is `StyleDraw.to_dict()` of the typed draw, and reads back to the same draw
    (after a JSON round trip, as from a shard), so a sample re-renders from its metadata."""
    import json

    from textsynth.synth.style import StyleDraw, sample_style

    for cfg in (SynthConfig(seed=46), SynthConfig(seed=46).replace(**FORCED)):
        syn = Synthesizer(cfg, pools_en)
        for i in range(40):
            st = syn.draw(syn.rng(i))["style"]
            back = StyleDraw.from_dict(json.loads(json.dumps(st)))
            assert back.to_dict() == st and list(back.to_dict()) == list(st)
            assert back == StyleDraw.from_dict(st)
        typed = sample_style(np.random.default_rng(7), cfg.style, cfg.fonts.size)
        assert typed == sample_style(np.random.default_rng(7), cfg.style, cfg.fonts.size)  # only its rng
        assert StyleDraw.from_dict(typed.to_dict()) == typed


def test_border_and_shadow_layers_follow_the_style_metadata(pools_en):
    """Switching border / shadow on in a sample's metadata gives that word its layer, under the glyphs and
    inside the coverage mask; off, there is none."""
    syn = Synthesizer(SynthConfig(seed=47).replace(**NO_CAMERA), pools_en)
    params = syn.draw(syn.rng(0))
    off = {**params["style"], "border": 0.0, "shadow": None}
    on = {**off, "border": 0.08, "shadow": {"dx": 0.06, "dy": 0.06, "blur": 0.02, "opacity": 0.8}}
    s_off, c_off = syn.render_layers({**params, "style": off})
    s_on, c_on = syn.render_layers({**params, "style": on})
    assert c_off.layers[1].border is None and c_off.layers[1].shadow is None
    for layer in c_on.layers:
        assert layer.border is not None and layer.shadow is not None
        assert (layer.border >= layer.glyph).all()  # the border is the dilated glyphs
    assert ((c_on.layers[1].coverage()) <= (s_on.images["mask_t"] > 0)).all()
    assert (s_on.images["mask_t"] > 0).sum() > (s_off.images["mask_t"] > 0).sum()
    assert check_sample(s_on) == [] and check_sample(s_off) == []
