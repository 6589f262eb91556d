"""Drills of issue 8 on the read side: corrupted bytes, swapped or foreign shards, manifests that drop
shards or do not add up, incomplete datasets, and HF metadata that `datasets` cannot open. Every
drill damages real files on disk and reads them back through the real readers and commands."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from textsynth.errors import IncompleteDatasetError, RowChecksumError, ShardIdentityError
import textsynth.shards.encodings as encodings_module
from textsynth.loading import make_loader, make_stream_loader
from textsynth.local_dataset import build_dataset, make_synthesizer, write_shard_file
from textsynth.shards.dataset import (Dataset, build_manifest, read_manifest, shard_name, verify_dataset,
                                      write_hf_metadata, write_manifest_atomic)
from textsynth.shards.reader import ShardReader
from textsynth.shards.schema import build_schema

FP = "f1" * 32  # a dataset fingerprint as generate writes it (hex)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth():
    return make_synthesizer("smoke", seed=0)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, synth):
    """One small dataset per encoding (12 samples, 3 shards, with identities), copied per test."""
    base = tmp_path_factory.mktemp("pristine")
    for enc in ("lz4", "raw", "png", "jpeg"):
        build_dataset(base / enc, 12, 3, enc, synth=synth, fingerprint=FP)
    return base


def _copy(pristine: Path, tmp_path: Path, enc: str = "lz4") -> Path:
    dst = tmp_path / f"ds-{enc}"
    shutil.copytree(pristine / enc, dst)
    return dst


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    """Flip bits of one byte of a file in place (as a failing disk or a careless edit would)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def _field_offset(path: Path, row: int, field: str) -> int:
    """File offset of the first byte of `field` (a text column or an image) of `row`."""
    reader = ShardReader(path).open()
    spans = reader._state.spans[field]  # the reader's own index: where the row's bytes sit in the file
    assert spans.base.size == path.stat().st_size  # zero-copy over the whole file: offsets are file offsets
    offset = int(spans.starts[row])
    reader.close()
    return offset


def _read_all(root: Path, keys=("i_s",), workers: int = 0, stream: bool = False, **kw) -> list[dict]:
    if stream:
        return list(make_stream_loader(str(root), 4, keys, num_workers=workers, **kw))
    return list(make_loader(str(root), 4, keys, num_workers=workers, shuffle=False, **kw))


def _cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys, cli; sys.argv = ['textsynth'] + sys.argv[1:]; cli.main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def _one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode != 0, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- flipped bits -------------------------------------------------------------------------------

def test_flipped_bit_in_a_label_is_named_by_every_reader(pristine, tmp_path):
    """`gigs` -> `eigs`: one bit of text_s changed in the file (LZ4 frames only cover images)."""
    root = _copy(pristine, tmp_path)
    shard = root / shard_name(1, 3)
    label = ShardReader(shard).row_meta(2).text_s
    _flip(shard, _field_offset(shard, 2, "text_s"), 0x02)  # 'g' (0x67) -> 'e' (0x65)
    flipped = pa.ipc.open_stream(shard.read_bytes()).read_all().column("text_s")[2].as_py()
    assert flipped == chr(ord(label[0]) ^ 0x02) + label[1:]  # what an unchecked reader hands to training
    with pytest.raises(RowChecksumError, match=rf"{shard_name(1, 3)}: row 2 .*checksum"):
        _read_all(root)  # map-style loader, liblz4 fast path
    with pytest.raises(RowChecksumError, match=rf"{shard_name(1, 3)}: row 2 .*checksum") as caught:
        _read_all(root, workers=1)  # raised in a DataLoader worker, re-raised in the training process
    # torch re-raises it with the worker's traceback in the message; the CLI still prints one line
    from textsynth.cli import error_line

    line = error_line(caught.value)
    assert "\n" not in line and "Traceback" not in line and f"{shard_name(1, 3)}: row 2" in line
    with pytest.raises(RowChecksumError, match=rf"{shard_name(1, 3)}: row 2"):
        _read_all(root, stream=True, stream_timeout=5, poll_interval=0.01)
    ds = Dataset(str(root))
    with pytest.raises(RowChecksumError, match=rf"{shard_name(1, 3)}: row 2"):
        ds.row_meta(4 + 2)
    with pytest.raises(RowChecksumError):
        list(ds)
    assert Dataset(str(root))[0].meta["text_s"]  # other rows still read
    # the commands built on these readers answer with one line naming the shard and row
    _one_line_error(_cli("preview", "--from", str(root), "--count", "12", "--out", str(tmp_path / "p.png")),
                    shard_name(1, 3), "row 2")
    _one_line_error(_cli("export", str(root), str(tmp_path / "exp")), shard_name(1, 3), "row 2")
    res = _cli("verify", str(root), "--rows", "0")
    assert res.returncode == 1 and f"{shard_name(1, 3)}: row 2" in res.stderr


@pytest.mark.parametrize("encoding", ["lz4", "raw", "png", "jpeg"])
def test_flipped_bit_in_an_image_is_caught(pristine, tmp_path, encoding, monkeypatch):
    root = _copy(pristine, tmp_path, encoding)
    shard = root / shard_name(0, 3)
    reader = ShardReader(shard).open()
    base, starts, ends = reader.image_spans("t_f")
    middle = int(starts[3] + (ends[3] - starts[3]) // 2)
    reader.close()
    _flip(shard, middle, 0x10)
    with pytest.raises(RowChecksumError, match=rf"{shard_name(0, 3)}: row 3 "):
        _read_all(root, keys=("t_f", "mask_t"))
    # the row checksum covers every image, also those a training run does not request
    with pytest.raises(RowChecksumError, match=rf"{shard_name(0, 3)}: row 3 "):
        _read_all(root, keys=("i_t",))
    with pytest.raises(RowChecksumError, match=rf"{shard_name(0, 3)}: row 3 "):
        Dataset(str(root))[3]
    assert any(f"{shard_name(0, 3)}: row 3 " in p for p in verify_dataset(str(root)))
    if encoding == "lz4":  # the python-lz4 path taken where the system liblz4 is missing
        monkeypatch.setattr(encodings_module, "LIBLZ4", None)
        with pytest.raises(RowChecksumError, match=rf"{shard_name(0, 3)}: row 3 "):
            _read_all(root, keys=("i_t",))


def test_checksum_verified_once_per_row_still_catches_later_damage_with_always(pristine, tmp_path):
    """verify="once" trusts a row verified in this mapping (immutable shards); "always" rechecks each read."""
    root = _copy(pristine, tmp_path)
    assert len(_read_all(root, verify="always")) == 3
    shard = root / shard_name(2, 3)
    _flip(shard, _field_offset(shard, 0, "meta") + 5)
    with pytest.raises(RowChecksumError, match=rf"{shard_name(2, 3)}: row 0 "):
        _read_all(root, verify="always")


# --- shard identity -----------------------------------------------------------------------------

def test_swapped_shard_files_are_named(pristine, tmp_path):
    root = _copy(pristine, tmp_path)
    a, b = root / shard_name(0, 3), root / shard_name(1, 3)
    tmp = root / "swap.tmp"
    os.replace(a, tmp)
    os.replace(b, a)
    os.replace(tmp, b)  # same row counts: only the order is wrong
    with pytest.raises(ShardIdentityError, match=rf"{shard_name(0, 3)}: holds shard 1 of 3, expected shard 0 of 3"):
        make_loader(str(root), 4, ("i_s",), num_workers=0)
    with pytest.raises(ShardIdentityError, match=shard_name(0, 3)):
        Dataset(str(root))[0]
    problems = verify_dataset(str(root))
    assert any("holds shard 1 of 3, expected shard 0 of 3" in p for p in problems)
    assert any("holds shard 0 of 3, expected shard 1 of 3" in p for p in problems)


def test_foreign_shard_is_named(pristine, tmp_path, synth):
    root = _copy(pristine, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_shard_file(other, 2, 3, range(8, 12), synth, "lz4", fingerprint="0" * 64)  # same rows, other dataset
    os.replace(other / shard_name(2, 3), root / shard_name(2, 3))
    with pytest.raises(ShardIdentityError, match=rf"{shard_name(2, 3)}: shard belongs to dataset 0+, .*foreign"):
        make_loader(str(root), 4, ("i_s",), num_workers=0)
    with pytest.raises(ShardIdentityError, match="foreign"):
        list(Dataset(str(root)))
    assert any("foreign shard" in p for p in verify_dataset(str(root)))


# --- manifests that lie, incomplete datasets -----------------------------------------------------

def _rewrite(root: Path, manifest: dict, hf_too: bool = True) -> None:
    write_manifest_atomic(None, str(root), manifest)
    if hf_too:  # state.json agreeing with the manifest, as a careless edit of both would leave it
        write_hf_metadata(None, str(root), build_schema(manifest["encoding"]), manifest["shards"])


def test_manifest_dropping_a_shard_is_refused(pristine, tmp_path):
    root = _copy(pristine, tmp_path)
    manifest = read_manifest(None, str(root))
    manifest["shards"] = manifest["shards"][:2]
    manifest["rows"] = 8  # the arithmetic adds up; only the shard names give it away
    _rewrite(root, manifest)
    for read in (lambda: Dataset(str(root)), lambda: make_loader(str(root), 4, ("i_s",), num_workers=0)):
        with pytest.raises(IncompleteDatasetError, match=r"textsynth.json: shard names say 3 shards but 2 are listed"):
            read()
    with pytest.warns(RuntimeWarning, match="reading partial data"):
        assert len(Dataset(str(root), allow_partial=True)) == 8
    with pytest.warns(RuntimeWarning, match="reading partial data"):
        assert sum(len(b["id"]) for b in _read_all(root, allow_partial=True)) == 8
    res = _cli("verify", str(root), "--rows", "0")
    assert res.returncode == 1 and "shard names say 3 shards but 2 are listed" in res.stderr


def test_incomplete_dataset_is_refused_by_loader_and_train(tmp_path, synth):
    """A killed generate: complete: false, 2 of 10 shards landed. The loader used to give 2/10 of the data."""
    root = tmp_path / "killed"
    infos = build_dataset(root, 20, 10, "lz4", synth=synth, fingerprint=FP, finish=False)
    for k in range(2, 10):
        (root / shard_name(k, 10)).unlink()
    manifest = build_manifest("lz4", infos[:2], complete=False, num_shards=10, fingerprint=FP)
    write_manifest_atomic(None, str(root), manifest)
    with pytest.raises(IncompleteDatasetError, match=r"killed/textsynth.json: incomplete dataset \(2 of 10 shards"):
        make_loader(str(root), 2, ("i_s",), num_workers=0)
    with pytest.raises(IncompleteDatasetError, match="allow_partial"):
        Dataset(str(root))
    with pytest.warns(RuntimeWarning, match="incomplete dataset"):
        assert sum(len(b["id"]) for b in _read_all(root, allow_partial=True)) == 4
    # stream=True stays the way to follow a dataset that is still being written
    with pytest.warns(RuntimeWarning, match="no new shard"):
        assert sum(len(b["id"]) for b in _read_all(root, stream=True, stream_timeout=0.3, poll_interval=0.05)) == 4
    _one_line_error(_cli("train", str(root), "--out", str(tmp_path / "run"), "--steps", "1", "--device", "cpu",
                         "--no-perceptual"),
                    "incomplete dataset (2 of 10 shards")
    assert not (tmp_path / "run" / "log.jsonl").exists()
    _one_line_error(_cli("preview", "--from", str(root), "--out", str(tmp_path / "p.png")), "incomplete dataset")


# --- verify ------------------------------------------------------------------------------------

def test_verify_catches_manifest_arithmetic_even_when_state_json_agrees(pristine, tmp_path):
    root = _copy(pristine, tmp_path)
    manifest = read_manifest(None, str(root))
    manifest["rows"] = 13
    _rewrite(root, manifest)
    problems = verify_dataset(str(root))
    assert any("textsynth.json: rows 13 but its shards hold 12" in p for p in problems), problems
    res = _cli("verify", str(root))
    assert res.returncode == 1 and "rows 13 but its shards hold 12" in res.stderr
    with pytest.raises(IncompleteDatasetError, match="rows 13 but its shards hold 12"):
        Dataset(str(root))


def test_verify_catches_hf_metadata_that_datasets_cannot_open(pristine, tmp_path):
    pytest.importorskip("datasets")
    root = _copy(pristine, tmp_path)
    info_path = root / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["features"]["height"] = {"dtype": "int64", "_type": "Value"}  # a plausible hand edit
    info_path.write_text(json.dumps(info))
    assert any("dataset_info.json: features" in p for p in verify_dataset(str(root)))
    res = _cli("verify", str(root), "--rows", "0")
    assert res.returncode == 1 and "dataset_info.json" in res.stderr

    root2 = _copy(pristine, tmp_path / "b")
    state = json.loads((root2 / "state.json").read_text())
    state["_format_type"] = "numpyy"  # lists the right files, yet load_from_disk refuses the folder
    (root2 / "state.json").write_text(json.dumps(state))
    problems = verify_dataset(str(root2))
    assert any("datasets.load_from_disk fails: ValueError" in p for p in problems), problems
    assert verify_dataset(str(pristine / "lz4")) == []


def test_deleted_shard_is_one_line_naming_it(pristine, tmp_path):
    root = _copy(pristine, tmp_path)
    (root / shard_name(1, 3)).unlink()
    _one_line_error(_cli("export", str(root), str(tmp_path / "exp")), "missing", shard_name(1, 3))
    with pytest.raises(IncompleteDatasetError, match=rf"missing from .*: {shard_name(1, 3)}"):
        make_loader(str(root), 4, ("i_s",), num_workers=0)


def test_format_1_shards_read_with_a_warning_and_fail_verify(pristine, tmp_path):
    """Shards written before row checksums existed: readable (LZ4 frames still checked), flagged by verify."""
    root = _copy(pristine, tmp_path)
    for k in range(3):
        path = root / shard_name(k, 3)
        table = pa.ipc.open_stream(path.read_bytes()).read_all().drop_columns(["checksum"])
        table = table.replace_schema_metadata(build_schema("lz4", version=1).metadata)
        with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
            w.write_table(table)
    manifest = read_manifest(None, str(root))
    manifest.pop("fingerprint")
    write_manifest_atomic(None, str(root), manifest)
    with pytest.warns(RuntimeWarning, match="no row checksums"):
        assert sum(len(b["id"]) for b in _read_all(root)) == 12
    with pytest.warns(RuntimeWarning, match="no row checksums"):
        problems = verify_dataset(str(root))
    assert sum("no row checksums" in p for p in problems) == 3
