"""The palette model: schemes drawn with their prior weights and colours that look like their scheme."""
from __future__ import annotations

import colorsys
from collections import Counter

import numpy as np

from textsynth.synth.colorspace import luminance
from textsynth.config import SynthConfig
from textsynth.synth.synthesizer import Synthesizer


def test_schemes_follow_their_priors_and_look_like_themselves(pools_en):
    syn = Synthesizer(SynthConfig(seed=51), pools_en)
    weights = np.array(syn.cfg.style.palette) / sum(syn.cfg.style.palette)
    n = 300
    seen = Counter()
    dark_ok = dark_n = light_ok = light_n = sat = sat_n = 0
    for i in range(n):
        s = syn.sample(i)
        scheme = s.meta["style"]["color_draw"]["scheme"]
        seen[scheme] += 1
        text = np.array(s.meta["colors"]["text"], np.float64)
        bg = s.images["t_b"][s.images["mask_t"] > 0].reshape(-1, 3).mean(axis=0)
        if scheme == "dark_on_light" and luminance(bg) > 0.35:  # a light surface: dark ink as drawn
            dark_n += 1
            dark_ok += luminance(text) < luminance(bg)
        if scheme == "light_on_dark" and luminance(bg) < 0.08:
            light_n += 1
            light_ok += luminance(text) > luminance(bg)
        if scheme == "signage":
            sat_n += 1
            sat += colorsys.rgb_to_hsv(*(text / 255.0))[1] > 0.3
    for k, name in enumerate(("dark_on_light", "light_on_dark", "signage", "related")):
        assert abs(seen[name] / n - weights[k]) < 0.08, (name, seen)
    assert dark_n >= 10 and dark_ok == dark_n
    assert light_n >= 5 and light_ok == light_n
    assert sat_n >= 30 and sat >= 0.6 * sat_n  # most signage keeps a saturated colour after the floor


def test_uniform_rgb_is_still_available(pools_en):
    syn = Synthesizer(SynthConfig(seed=52).replace(**{"style.color_uniform_p": 1.0}), pools_en)
    assert {syn.sample(i).meta["style"]["color_draw"]["scheme"] for i in range(20)} == {"uniform"}
