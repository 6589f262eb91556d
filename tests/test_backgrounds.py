"""Photo backgrounds cropped at text scale, placed on smooth surface, read lazily from an index."""
from __future__ import annotations

import numpy as np
from PIL import Image

from textsynth.config import SynthConfig
from textsynth.synth.synthesizer import Synthesizer


def _pool_cfg(folder, **kw):
    base = {"background.bundled": False, "background.extra": [str(folder)], "background.texture_p": 0.0}
    return SynthConfig(seed=9).replace(**base, **kw)


def _smooth(h, w, seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 6, 3)).astype(np.uint8)
    return np.array(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def test_crop_height_follows_text_height(tmp_path):
    Image.fromarray(_smooth(900, 1400, 0)).save(tmp_path / "big.png")
    lo, hi = 1.5, 3.0
    syn = Synthesizer(_pool_cfg(tmp_path, **{"background.text_scale": [lo, hi]}))
    ratios, clamped = [], 0
    for i in range(120):
        m = syn.sample(i).meta
        crop = m["background_crop"]
        if crop["clamped"]:
            clamped += 1
            continue
        r = crop["h"] / m["text_height"]
        ratios.append(r)
        assert lo - 0.05 <= r <= hi + 0.05, (i, r, crop, m["text_height"])
        assert crop["attempt"] == 0 or m["background"]["ratio"][crop["attempt"]] != m["background"]["ratio"][0]
    assert clamped <= 2 and len(ratios) >= 118
    assert max(ratios) - min(ratios) > 0.8 * (hi - lo)  # the whole configured range is drawn


def test_placement_prefers_smooth_surface(tmp_path):
    """Left half a smooth gradient, right half noise: placements land on the smooth half."""
    rng = np.random.default_rng(1)
    img = _smooth(600, 1600, 2)
    img[:, 800:] = rng.integers(0, 256, (600, 800, 3))
    Image.fromarray(img).save(tmp_path / "half.png")
    syn = Synthesizer(_pool_cfg(tmp_path, **{"background.text_scale": [1.2, 2.0], "background.placement_tries": 8}))
    smooth = busy = 0
    for i in range(80):
        crop = syn.sample(i).meta["background_crop"]
        if crop["busy"]:
            busy += 1
        else:
            smooth += crop["busyness"] <= syn.cfg.background.busy_max
    assert smooth >= 70 and busy <= 10
    # one placement only: about half land on noise and are accepted with the busy flag
    one = Synthesizer(_pool_cfg(tmp_path, **{"background.text_scale": [1.2, 2.0], "background.placement_tries": 1}))
    flags = [one.sample(i).meta["background_crop"]["busy"] for i in range(60)]
    assert 10 <= sum(flags) <= 50


def test_busy_only_pool_accepts_with_flag(tmp_path):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    syn = Synthesizer(_pool_cfg(tmp_path))
    for i in range(10):
        s = syn.sample(i)
        assert s.meta["background_crop"]["busy"] is True
        assert s.meta["background_crop"]["attempt"] < syn.cfg.background.placement_tries
