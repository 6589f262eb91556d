"""Bad input gets a clear warning or error naming the file or value, and nothing crashes."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from fontTools import subset
from fontTools.ttLib import TTFont
from PIL import Image

from textsynth import config as cfgmod
from textsynth.assets import asset_root
from textsynth.synth.backgrounds import BackgroundPool, load_image
from textsynth.config import BackgroundConfig, CorpusConfig, FontConfig, SynthConfig
from textsynth.synth.corpus import Corpus
from textsynth.errors import BackgroundError, ConfigError, CorpusError, CoverageError, FontError
from textsynth.synth.fonts import FontPool, read_font
from textsynth.synth.synthesizer import Pools, Synthesizer


def test_corrupt_and_non_font_files_are_skipped_with_a_warning(tmp_path):
    bad = tmp_path / "garbage.ttf"
    bad.write_bytes(b"\x00\x01\x00\x00" + bytes(range(256)) * 4)
    text = tmp_path / "notes.otf"
    text.write_text("this is not a font")
    with pytest.warns(UserWarning) as rec:
        pool = FontPool.from_config(FontConfig(extra=(str(tmp_path),)))
    msgs = " ".join(str(w.message) for w in rec)
    assert "garbage.ttf" in msgs and "notes.otf" in msgs
    assert all(f.name not in ("garbage.ttf", "notes.otf") for f in pool.fonts)


def test_glyphless_font_is_rejected_naming_it(tmp_path):
    src = asset_root() / "fonts" / "DejaVuSans.ttf"
    font = TTFont(src)
    opts = subset.Options()
    opts.notdef_outline = True
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=[])
    sub.subset(font)
    out = tmp_path / "empty.ttf"
    font.save(out)
    with pytest.raises(FontError, match="empty.ttf"):
        read_font(out)
    with pytest.raises(FontError, match="empty"):
        FontPool.from_config(FontConfig(bundled=False, extra=(str(out),)))


def test_user_font_folder_is_used(tmp_path):
    (tmp_path / "DejaVuSerif.ttf").write_bytes((asset_root() / "fonts" / "DejaVuSerif.ttf").read_bytes())
    pool = FontPool.from_config(FontConfig(bundled=False, extra=(str(tmp_path),)))
    assert [f.name for f in pool.fonts] == ["DejaVuSerif.ttf"]
    with pytest.raises(CoverageError, match="missing"):
        pool.choose(np.random.default_rng(0), "汉字")


def test_images_are_normalised(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (80, 90), dtype=np.uint8), "L").save(tmp_path / "grey.png")
    Image.fromarray(rng.integers(0, 255, (80, 90, 4), dtype=np.uint8), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (80, 90, 3), dtype=np.uint8)).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(rng.integers(0, 65535, (80, 90), dtype=np.uint16)).save(tmp_path / "deep.png")
    exif_img = Image.fromarray(rng.integers(0, 255, (40, 100, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    exif_img.save(tmp_path / "rotated.jpg", exif=exif)
    for name in ("grey.png", "rgba.png", "pal.png", "deep.png", "rotated.jpg"):
        arr = load_image(tmp_path / name, 32)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3, name
    assert load_image(tmp_path / "rotated.jpg", 32).shape[:2] == (100, 40)  # EXIF orientation applied
    deep = load_image(tmp_path / "deep.png", 32)
    assert deep.max() > 200  # 16-bit scaled, not clipped to 255/65535


def test_bad_images_are_rejected_naming_them(tmp_path):
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.new("RGB", (10, 12), (9, 9, 9)).save(tmp_path / "tiny.png")
    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")  # 81 MP, a few KB on disk
    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "ok.png")
    with pytest.warns(UserWarning) as rec:
        pool = BackgroundPool.from_config(BackgroundConfig(bundled=False, extra=(str(tmp_path),)))
    msgs = " ".join(str(w.message) for w in rec)
    for name in ("corrupt.jpg", "tiny.png", "bomb.png"):
        assert name in msgs
    assert [e.name for e in pool.entries] == ["ok.png"]
    assert {r.path.rsplit("/", 1)[-1] for r in pool.rejected} == {"corrupt.jpg", "tiny.png", "bomb.png"}
    with pytest.raises(BackgroundError, match="bomb.png"):
        load_image(tmp_path / "bomb.png", 32)


def test_corpus_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(CorpusError, match="empty.txt"):
        Corpus.from_config(CorpusConfig(files=(str(empty),)))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="latin1.txt.*UTF-8|not UTF-8.*latin1.txt"):
        Corpus.from_config(CorpusConfig(files=(str(latin1),)))
    with pytest.raises(CorpusError, match="missing.txt"):
        Corpus.from_config(CorpusConfig(files=(str(tmp_path / "missing.txt"),)))
    single = tmp_path / "single.txt"
    single.write_text("only\n")
    corpus = Corpus.from_config(CorpusConfig(files=(str(single),), random_fraction=0.0, capitalize_p=0, upper_p=0))
    with pytest.raises(CorpusError, match="two different"):
        corpus.pair(np.random.default_rng(0))


def test_characters_no_font_covers_are_dropped_with_a_warning(tmp_path, pools_en):
    mixed = tmp_path / "words.txt"
    mixed.write_text("hello\nनमस्ते\nworld\nमराठी\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="words.txt: dropped 2 lines"):
        corpus = Corpus.from_config(CorpusConfig(files=(str(mixed),)), pools_en.fonts.coverage)
    assert sorted(corpus.words["en"]) == ["hello", "world"]
    only_bad = tmp_path / "hindi.txt"
    only_bad.write_text("नमस्ते\n", encoding="utf-8")
    with pytest.warns(UserWarning), pytest.raises(CorpusError, match="hindi.txt"):
        Corpus.from_config(CorpusConfig(files=(str(only_bad),)), pools_en.fonts.coverage)


def test_user_corpus_renders(tmp_path, pools_en):
    words = tmp_path / "words.txt"
    words.write_text("alpha\nbeta\ngamma\n中文\n文字\n", encoding="utf-8")
    cfg = SynthConfig(seed=1).replace(**{"corpus.files": [str(words)], "corpus.random_fraction": 0.0,
                                         "corpus.lang": "mixed"})
    syn = Synthesizer(cfg)
    seen = {syn.sample(i).meta["text_t"].lower() for i in range(40)}
    assert seen <= {"alpha", "beta", "gamma", "中文", "文字"} and len(seen) >= 4


def test_config_errors_name_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match="unknown key config.style.curv"):
        cfgmod.from_dict({"style": {"curv": 0.5}})
    with pytest.raises(ConfigError, match=r"config.style.curve_p must be a probability.*1.5"):
        cfgmod.from_dict({"style": {"curve_p": 1.5}})
    with pytest.raises(ConfigError, match=r"config.fonts.size"):
        cfgmod.from_dict({"fonts": {"size": [60, 20]}})
    with pytest.raises(ConfigError, match=r"config.corpus.lang"):
        cfgmod.from_dict({"corpus": {"lang": "fr"}})
    with pytest.raises(ConfigError, match=r"config.render.height must be an integer"):
        cfgmod.from_dict({"render": {"height": "64"}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[style\ncurve_p = 2")
    with pytest.raises(ConfigError, match="bad.toml"):
        cfgmod.load(bad)
    good = tmp_path / "good.toml"
    good.write_text('seed = 5\n[style]\ncurve_p = 0.5\n[corpus]\nlang = "zh"\n')
    cfg = cfgmod.load(good)
    assert cfg.seed == 5 and cfg.style.curve_p == 0.5 and cfg.corpus.lang == "zh"


def test_pools_pickle_small_state_and_rebuild_fonts(pools_en):
    import pickle

    blob = pickle.dumps(pools_en)
    again = pickle.loads(blob)
    s1 = Synthesizer(SynthConfig(seed=2), pools_en).sample(3)
    s2 = Synthesizer(SynthConfig(seed=2), again).sample(3)
    assert s1.images["t_f"].tobytes() == s2.images["t_f"].tobytes()
    assert len(blob) < 60_000_000


def test_no_warnings_from_the_bundled_pools():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Pools.from_config(SynthConfig().replace(**{"corpus.lang": "mixed"}))


def test_font_files_are_written_once_per_content(tmp_path, monkeypatch):
    """FreeType maps font files: a file rewritten under a mapping kills the process (SIGBUS), so each
    content gets one immutable file in a per-user cache that processes share."""
    from textsynth.synth.fonts import font_file

    monkeypatch.setenv("TEXTSYNTH_FONT_CACHE", str(tmp_path))
    data = (asset_root() / "fonts" / "DejaVuSans.ttf").read_bytes()[:-1] + b"\x00"  # content not cached yet
    first = font_file(data, "x.ttf")
    ino = Path(first).stat().st_ino
    again = font_file(data, "x.ttf")
    assert again == first and Path(again).stat().st_ino == ino and Path(first).read_bytes() == data
    other = font_file(data + b"\x00", "x.ttf")  # same name, other content: another file
    assert other != first and Path(first).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name) == []
