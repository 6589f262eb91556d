"""Command-line recipe overrides: --set typed by the config schema, the shortcut flags, the manifest record."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from textsynth.config import SynthConfig
from textsynth.errors import ConfigError
from textsynth.overrides import apply, collect, parse_set
from textsynth.shards.dataset import Dataset, read_manifest

from .support.procs import kill_marked, new_marker

ROOT = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "textsynth")]


def test_set_values_are_typed_by_the_schema():
    assert parse_set("style.curve_p=0.5") == ("style.curve_p", 0.5)
    assert parse_set("render.height=32") == ("render.height", 32)
    assert parse_set("fonts.bundled=false") == ("fonts.bundled", False)
    assert parse_set("corpus.random_charset=digits") == ("corpus.random_charset", "digits")
    assert parse_set("background.crop_scale=[0.5, 0.9]")[1] == [0.5, 0.9]
    assert parse_set("background.crop_scale=0.5,0.9")[1] == [0.5, 0.9]
    cfg = apply(SynthConfig(), collect(("style.curve_p=1", "background.crop_scale=0.5,0.9", "seed=4")))
    assert cfg.style.curve_p == 1.0 and isinstance(cfg.style.curve_p, float)
    assert cfg.background.crop_scale == (0.5, 0.9) and cfg.seed == 4


@pytest.mark.parametrize("item, names", [
    ("style.nope=1", "style.nope"), ("nope.x=1", "nope.x"), ("render.height=abc", "render.height"),
    ("style.curve_p=2", "style.curve_p"), ("render=3", "render"), ("fonts.bundled=maybe", "fonts.bundled"),
    ("curve_p", "curve_p"),
])
def test_bad_set_names_the_key(item, names):
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        apply(SynthConfig(), collect((item,)))


def test_preview_cli_error_is_one_line_naming_the_key(tmp_path):
    r = subprocess.run(CLI + ["preview", "--count", "1", "--set", "style.curve_p=7", "--out", str(tmp_path / "p.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "style.curve_p" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "p.png").exists()


def test_generate_with_user_pools_height_and_set_records_the_resolved_config(tmp_path):
    fonts = tmp_path / "myfonts"
    fonts.mkdir()
    shutil.copy(ROOT / "fonts" / "Comfortaa-Regular.ttf", fonts)
    bgs = tmp_path / "mybg"
    bgs.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(bgs / "noise.png")
    words = ["alpha", "bravo", "charlie", "delta"]
    (tmp_path / "words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    marker, ray_tmp = new_marker(), tempfile.mkdtemp(prefix="tsr-")
    env = {**os.environ, "TEXTSYNTH_TEST_MARK": marker, "RAY_TMPDIR": ray_tmp}
    try:
        r = subprocess.run(CLI + ["generate", "--out", str(tmp_path / "ds"), "--count", "12", "--shard-size", "6",
                                  "--pipeline", "smoke", "--fonts", str(fonts), "--backgrounds", str(bgs),
                                  "--corpus", str(tmp_path / "words.txt"), "--height", "32",
                                  "--set", "background.texture_p=0", "--set", "corpus.random_fraction=0",
                                  "--set", "style.curve_p=1.0", "--num-cpus", "1", "--quiet"],
                           capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    finally:
        kill_marked(marker)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = read_manifest(None, str(tmp_path / "ds"))["config"]
    assert cfg["fonts"]["bundled"] is False and cfg["fonts"]["extra"] == [str(fonts)]
    assert cfg["background"]["bundled"] is False and cfg["background"]["extra"] == [str(bgs)]
    assert cfg["corpus"]["files"] == [str(tmp_path / "words.txt")]
    assert cfg["render"]["height"] == 32 and cfg["style"]["curve_p"] == 1.0 and cfg["background"]["texture_p"] == 0.0
    ds = Dataset(tmp_path / "ds")
    for i in range(len(ds)):
        s = ds[i]
        assert s.images["i_s"].shape[0] == 32
        assert s.meta["font"] == "Comfortaa-Regular.ttf" and s.meta["background"]["name"] == "noise.png"
        assert s.meta["text_s"].lower() in words and s.meta["style"]["curve"] != 0
