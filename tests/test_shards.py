"""Shard format: codecs, writer/reader round trips, HF/pyarrow/polars interop, atomicity, corruption detection."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from textsynth.errors import CorruptShardError, InvalidSampleError, ManifestError, ShardSchemaError
from textsynth.sample import GREY, IMAGE_CHANNELS, IMAGE_KEYS, Sample
from textsynth.shards import encodings
from textsynth.shards.dataset import (
    Dataset,
    build_manifest,
    read_manifest,
    shard_name,
    verify_dataset,
    verify_shard,
    write_dataset_metadata,
    write_manifest_atomic,
)
from textsynth.shards.reader import ShardReader
from textsynth.shards.schema import build_schema, parse_schema
from textsynth.shards.writer import ShardWriter

HEIGHT = 64
WIDTHS = (40, 97, 128, 203, 255, 64, 311)


def _smooth(rng: np.random.Generator, width: int, channels: int) -> np.ndarray:
    """Random-ish image: upscaled coarse noise plus fine noise, like a textured background."""
    coarse = rng.integers(0, 256, (8, max(2, width // 8), channels), dtype=np.uint8)
    img = cv2.resize(coarse, (width, HEIGHT), interpolation=cv2.INTER_LINEAR).reshape(HEIGHT, width, channels)
    noise = rng.integers(-6, 7, img.shape)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def make_sample(rng: np.random.Generator, index: int, width: int) -> Sample:
    """A Sample with random-ish pixels and metadata shaped like the renderer's."""
    mask = (_smooth(rng, width, 1)[:, :, 0] > 140).astype(np.uint8) * 255
    images = {}
    for key in IMAGE_KEYS:
        if key in ("t_sk", "mask_t", "mask_s"):
            images[key] = mask if key != "mask_s" else np.roll(mask, 3, axis=1)
        else:
            images[key] = _smooth(rng, width, 3)
    images["i_t"][mask > 0] = 0
    images["i_t"][mask == 0] = GREY
    n = 5
    meta = {
        "id": f"train-{index:06d}", "text_s": "Straße", "text_t": f"word{index}", "font": "DejaVuSans-Bold.ttf",
        "style": {"size": 41, "color": [12, 200, 33], "border": {"width": 2}, "rotate": -3.5},
        "background": "bg/0001.jpg", "seed": 1234 + index,
        "boxes_s": [[4 * c, 3, 4 * c + 9, 50] for c in range(n)], "boxes_t": [[5 * c, 2, 5 * c + 8, 51] for c in range(n)],
        "np_value": np.int64(7),
    }
    return Sample(images=images, meta=meta)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    rng = np.random.default_rng(1234)
    return [make_sample(rng, i, w) for i, w in enumerate(WIDTHS)]


def write_shard(path: Path, samples: list[Sample], encoding: str = "lz4", batch_rows: int = 3):
    with ShardWriter(path, encoding=encoding, batch_rows=batch_rows) as writer:
        for s in samples:
            writer.write(s)
        return writer.close()


def write_dataset(root: Path, samples: list[Sample], encoding: str = "lz4", shards: int = 3) -> dict:
    parts = np.array_split(np.arange(len(samples)), shards)
    infos = [write_shard(root / shard_name(k, shards), [samples[i] for i in idx], encoding)
             for k, idx in enumerate(parts)]
    return write_dataset_metadata(None, str(root), encoding, infos, seed=7, config={"height": HEIGHT})


def expected_meta(sample: Sample) -> dict:
    return json.loads(json.dumps(sample.meta, default=lambda v: v.item()))


# --- codecs ---------------------------------------------------------------------------------------

def test_unknown_encoding_is_rejected_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'webp'"):
        encodings.get_codec("webp")
    with pytest.raises(ValueError, match="'webp'"):
        ShardWriter(tmp_path / "x.arrow", encoding="webp")
    with pytest.raises(ValueError, match="batch_rows"):
        ShardWriter(tmp_path / "x.arrow", batch_rows=0)
    with pytest.raises(ValueError, match="index"):
        shard_name(3, 3)
    assert shard_name(3, 10) == "data-00003-of-00010.arrow"


def test_png_and_jpeg_payloads_are_standard_rgb() -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    for enc in ("png", "jpeg"):
        data = encodings.encode("i_s", red, enc)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert bgr[4, 4, 2] > 240 and bgr[4, 4, 0] < 15, enc  # red is the last channel in BGR
        assert np.abs(encodings.decode("i_s", data, 8, 8, enc).astype(int) - red).max() <= 3
    assert encodings.get_codec("jpeg").image_encoding("mask_t") == "png"
    assert encodings.get_codec("jpeg").image_encoding("i_s") == "jpeg"


@pytest.mark.parametrize("encoding", ["raw", "lz4", "png", "jpeg"])
def test_wrong_size_payload_raises_corrupt(encoding: str) -> None:
    img = np.full((10, 20, 3), 9, np.uint8)
    data = encodings.encode("t_b", img, encoding)
    with pytest.raises(CorruptShardError):
        encodings.decode("t_b", data, 10, 21, encoding)
    with pytest.raises(CorruptShardError):
        encodings.decode("t_b", data[: len(data) // 2], 10, 20, encoding)


# --- writer + reader ------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["raw", "lz4", "png", "jpeg"])
def test_round_trip(tmp_path: Path, samples: list[Sample], encoding: str) -> None:
    path = tmp_path / "shard.arrow"
    info = write_shard(path, samples, encoding)
    assert (info.file, info.rows, info.bytes) == ("shard.arrow", len(samples), path.stat().st_size)
    reader = ShardReader(path)
    assert len(reader) == len(samples) and reader.encoding == encoding
    np.testing.assert_array_equal(reader.widths, np.array(WIDTHS, np.int32))
    assert reader.widths.dtype == np.int32 and (reader.heights == HEIGHT).all()
    for i, want in enumerate(samples):
        got = reader[i]
        assert got.meta == expected_meta(want)
        assert reader.row_meta(i) == (want.meta["id"], "Straße", want.meta["text_t"], HEIGHT, WIDTHS[i])
        for key in IMAGE_KEYS:
            assert got.images[key].shape == want.images[key].shape and got.images[key].dtype == np.uint8
            if encoding == "jpeg" and IMAGE_CHANNELS[key] == 3:
                diff = np.abs(got.images[key].astype(int) - want.images[key])
                assert diff.mean() < 4.0, (key, diff.mean())
            else:
                np.testing.assert_array_equal(got.images[key], want.images[key], err_msg=f"{encoding} {key}")
            if encoding != "jpeg":
                assert bytes(reader.image_bytes(i, key)) == encodings.encode(key, want.images[key], encoding)


def test_image_bytes_is_a_zero_copy_view_of_the_mapped_file(tmp_path: Path, samples: list[Sample]) -> None:
    path = tmp_path / "shard.arrow"
    write_shard(path, samples, "raw")
    reader = ShardReader(path)
    base, starts, ends = reader.image_spans("i_s")
    assert base.size == path.stat().st_size  # indexes point into the file mapping itself
    view = reader.image_bytes(2, "i_s")
    assert isinstance(view, np.ndarray) and not view.flags.writeable and np.shares_memory(view, base)
    file_bytes = path.read_bytes()
    assert bytes(view) == file_bytes[starts[2]:ends[2]] == samples[2].images["i_s"].tobytes()


def test_sha256_matches_hashlib(tmp_path: Path, samples: list[Sample]) -> None:
    path = tmp_path / "shard.arrow"
    info = write_shard(path, samples[:3])
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert verify_shard(None, str(path), info.to_dict()) == []
    uri_info = write_shard(tmp_path / "other.arrow", samples[:3])
    with ShardWriter(f"file://{tmp_path}/via-uri.arrow") as writer:  # URIs resolve through pyarrow.fs
        for s in samples[:3]:
            writer.write(s)
        assert writer.close().sha256 == uri_info.sha256  # deterministic bytes


def test_exception_mid_write_leaves_no_final_and_no_temp_file(tmp_path: Path, samples: list[Sample]) -> None:
    path = tmp_path / "shard.arrow"
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(path, batch_rows=1) as writer:
            writer.write(samples[0])
            writer.write(samples[1])  # batches of 1: bytes already reached the temp file
            assert any(p.name.startswith(".shard.arrow.tmp-") for p in tmp_path.iterdir())
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_invalid_samples_are_named(tmp_path: Path, samples: list[Sample]) -> None:
    good = samples[0]
    bad_cases = {
        "missing": ({k: v for k, v in good.images.items() if k != "t_b"}, "t_b"),
        "channels": ({**good.images, "mask_t": good.images["i_s"]}, "mask_t"),
        "size": ({**good.images, "t_f": good.images["t_f"][:, :-1]}, "t_f"),
        "dtype": ({**good.images, "t_t": good.images["t_t"].astype(np.float32)}, "t_t"),
    }
    with ShardWriter(tmp_path / "x.arrow") as writer:
        for images, key in bad_cases.values():
            with pytest.raises(InvalidSampleError, match=f"train-000000.*{key}"):
                writer.write(Sample(images=images, meta=good.meta))
        with pytest.raises(InvalidSampleError, match="id"):
            writer.write(Sample(images=good.images, meta={"text_s": "a", "text_t": "b"}))
        writer.write(good)  # the writer stays usable after rejecting bad samples
        assert writer.close().rows == 1


def test_schema_mismatch_names_the_shard(tmp_path: Path) -> None:
    path = tmp_path / "foreign.arrow"
    table = pa.table({"id": ["a"]})
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table)
    with pytest.raises(ShardSchemaError, match="foreign.arrow"):
        ShardReader(path).open()
    schema = build_schema("png")
    assert parse_schema(schema, "x").encoding == "png"
    with pytest.raises(ShardSchemaError, match="x.arrow"):
        parse_schema(schema.remove(3), "x.arrow")


def test_remote_filesystem_is_written_on_close_only(samples: list[Sample]) -> None:
    fs, _ = pafs.FileSystem.from_uri("mock://")
    with pytest.raises(RuntimeError):
        with ShardWriter("bucket/a.arrow", filesystem=fs, batch_rows=1) as writer:
            writer.write(samples[0])
            raise RuntimeError
    assert fs.get_file_info("bucket/a.arrow").type == pafs.FileType.NotFound
    with ShardWriter("bucket/b.arrow", encoding="png", filesystem=fs) as writer:
        writer.write(samples[1])
        info = writer.close()
    reader = ShardReader("bucket/b.arrow", filesystem=fs)
    np.testing.assert_array_equal(reader[0].images["t_b"], samples[1].images["t_b"])
    assert verify_shard(fs, "bucket/b.arrow", info.to_dict()) == []


# --- corruption -----------------------------------------------------------------------------------

def test_truncated_shard_is_named(tmp_path: Path, samples: list[Sample]) -> None:
    path = tmp_path / "data-00000-of-00001.arrow"
    info = write_shard(path, samples)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptShardError, match="data-00000-of-00001.arrow"):
        ShardReader(path).open()
    problems = verify_shard(None, str(path), info.to_dict())
    assert problems and all("data-00000-of-00001.arrow" in p for p in problems)
    path.write_bytes(data[:-8])  # cut exactly at a batch boundary: only the end-of-stream marker is gone
    with pytest.raises(CorruptShardError, match="end-of-stream"):
        len(ShardReader(path))


@pytest.mark.parametrize("encoding", ["raw", "lz4", "png"])
def test_flipped_bytes_in_a_payload_are_named(tmp_path: Path, samples: list[Sample], encoding: str) -> None:
    path = tmp_path / "data-00000-of-00001.arrow"
    info = write_shard(path, samples, encoding)
    _, starts, ends = ShardReader(path).image_spans("t_f")
    middle = int(starts[4] + ends[4]) // 2
    data = bytearray(path.read_bytes())
    data[middle: middle + 4] = bytes(b ^ 0xFF for b in data[middle: middle + 4])
    path.write_bytes(bytes(data))
    problems = verify_shard(None, str(path), {**info.to_dict(), "encoding": encoding})
    assert any("sha256" in p and path.name in p for p in problems)
    if encoding != "raw":  # lz4 content checksum / PNG CRC catch it at decode time too
        assert any("row 4" in p and "t_f" in p for p in problems)
        with pytest.raises(CorruptShardError, match=path.name):
            ShardReader(path).decode_image(4, "t_f")


# --- dataset folder -------------------------------------------------------------------------------

def test_hf_pyarrow_and_polars_read_the_same_rows(tmp_path: Path, samples: list[Sample]) -> None:
    import datasets
    import polars as pl

    manifest = write_dataset(tmp_path, samples, "lz4", shards=3)
    ours = Dataset(tmp_path)
    assert len(ours) == len(samples) and manifest["rows"] == len(samples)
    hf = datasets.load_from_disk(str(tmp_path))
    assert hf.num_rows == len(samples)
    assert hf.features["width"] == datasets.Value("int32") and hf.features["i_s"] == datasets.Value("binary")
    assert build_schema("lz4").equals(hf.features.arrow_schema)  # so HF maps the shards without a cast
    plain = pa.concat_tables(pa.ipc.open_stream(str(tmp_path / e["file"])).read_all() for e in manifest["shards"])
    frame = pl.concat([pl.read_ipc_stream(tmp_path / e["file"]) for e in manifest["shards"]])
    assert frame["width"].to_list() == plain.column("width").to_pylist() == ours.widths.tolist()
    for i in range(len(samples)):
        row = hf[i]
        meta = ours.row_meta(i)
        assert (row["id"], row["text_s"], row["text_t"], row["height"], row["width"]) == tuple(meta)
        assert plain.column("id")[i].as_py() == frame["id"][i] == meta.id
        assert json.loads(row["meta"]) == ours[i].meta
        for key in IMAGE_KEYS:
            payload = bytes(ours.image_bytes(i, key))
            assert row[key] == payload == plain.column(key)[i].as_py() == frame[key][i]


def test_empty_shard_opens_everywhere(tmp_path: Path) -> None:
    import datasets

    info = ShardWriter(tmp_path / shard_name(0, 1), encoding="png").close()
    assert info.rows == 0 and info.bytes == (tmp_path / info.file).stat().st_size
    write_dataset_metadata(None, str(tmp_path), "png", [info])
    assert len(Dataset(tmp_path)) == 0 and Dataset(tmp_path).widths.size == 0
    assert datasets.load_from_disk(str(tmp_path)).num_rows == 0
    assert verify_dataset(str(tmp_path)) == []


def test_dataset_indexing_widths_and_pickling(tmp_path: Path, samples: list[Sample]) -> None:
    write_dataset(tmp_path, samples, "png", shards=3)
    ds = Dataset(tmp_path)
    assert [ds.locate(i) for i in (0, 2, 3, 6, -1)] == [(0, 0), (0, 2), (1, 0), (2, 1), (2, 1)]
    np.testing.assert_array_equal(ds.widths, WIDTHS)
    with pytest.raises(IndexError):
        ds[len(samples)]
    ds[5]  # opens a shard; pickling must drop the mapping but keep working
    clone = pickle.loads(pickle.dumps(ds))
    assert all(r._opened is None for r in clone.shards)
    np.testing.assert_array_equal(clone[5].images["i_t"], samples[5].images["i_t"])
    assert clone.row_meta(-1).id == samples[-1].meta["id"]
    assert verify_dataset(str(tmp_path)) == []


def test_hf_metadata_files_match_save_to_disk_format(tmp_path: Path, samples: list[Sample]) -> None:
    write_dataset(tmp_path, samples[:2], "raw", shards=2)
    state = json.loads((tmp_path / "state.json").read_text())
    assert set(state) == {"_data_files", "_fingerprint", "_format_columns", "_format_kwargs", "_format_type",
                          "_output_all_columns", "_split"}
    assert state["_data_files"] == [{"filename": shard_name(k, 2)} for k in range(2)]
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["features"]["height"] == {"dtype": "int32", "_type": "Value"}
    assert info["features"]["mask_s"] == {"dtype": "binary", "_type": "Value"}


def test_manifest_is_validated_and_written_atomically(tmp_path: Path, samples: list[Sample]) -> None:
    with pytest.raises(ManifestError, match="textsynth.json"):
        read_manifest(None, str(tmp_path))
    manifest = write_dataset(tmp_path, samples[:2], "lz4", shards=1)
    assert read_manifest(None, str(tmp_path)) == manifest
    assert manifest["seed"] == 7 and manifest["config"] == {"height": HEIGHT}
    broken = {**manifest, "shards": [{**manifest["shards"][0], "sha256": "nope"}]}
    with pytest.raises(ManifestError, match="sha256"):
        write_manifest_atomic(None, str(tmp_path), broken)
    with pytest.raises(ValueError, match="reserved"):
        build_manifest("lz4", [], shards=[])
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
    assert read_manifest(None, str(tmp_path)) == manifest


def test_dataset_shard_with_wrong_row_count_is_named(tmp_path: Path, samples: list[Sample]) -> None:
    manifest = write_dataset(tmp_path, samples, "lz4", shards=2)
    first = manifest["shards"][0]
    info = write_shard(tmp_path / first["file"], samples[:1])  # replaced behind the manifest's back
    assert info.rows != first["rows"]
    with pytest.raises(CorruptShardError, match=first["file"]):
        Dataset(tmp_path)[0]
    problems = verify_dataset(str(tmp_path))
    assert any(first["file"] in p and "rows" in p for p in problems)


# --- decode_into (the loader's decode path) and per-mapping caches ------------------------------------

@pytest.mark.parametrize("encoding, liblz4", [("lz4", True), ("lz4", False), ("raw", True), ("png", True),
                                               ("jpeg", True)])
def test_decode_into_equals_decode(samples, encoding, liblz4, monkeypatch):
    if not liblz4:
        monkeypatch.setattr(encodings, "LIBLZ4", None)  # the python-lz4 path
    codec = encodings.get_codec(encoding)
    s = samples[0]
    for key in IMAGE_KEYS:
        payload = np.frombuffer(codec.encode(key, s.images[key]), np.uint8)
        want = codec.decode(key, payload, s.height, s.width)
        dst = np.full(want.shape, 7, np.uint8)
        codec.decode_into(key, payload, dst)
        assert np.array_equal(dst, want), key
        if encoding in ("lz4", "raw"):
            with pytest.raises(CorruptShardError, match=key):
                codec.decode_into(key, payload, np.empty((want.shape[0], want.shape[1] + 1) + want.shape[2:], np.uint8))
    if encoding == "lz4":
        assert (codec.frame_decoder() is None) == (encodings.LIBLZ4 is None)
        payload = np.frombuffer(codec.encode("i_s", s.images["i_s"]), np.uint8).copy()
        payload[len(payload) // 2] ^= 0x40
        with pytest.raises(CorruptShardError, match="i_s"):
            codec.decode_into("i_s", payload, np.empty(s.images["i_s"].shape, np.uint8))


def test_mapping_cache_lives_as_long_as_the_mapping(tmp_path, samples):
    path = tmp_path / "s.arrow"
    write_shard(path, samples[:3])
    reader = ShardReader(path)
    first = reader.mapping_cache("bits", lambda: np.zeros(len(reader), np.uint8))
    first[1] = 5
    assert reader.mapping_cache("bits", lambda: None) is first  # built once per mapping
    reader.close()
    again = reader.mapping_cache("bits", lambda: np.zeros(len(reader), np.uint8))
    assert again is not first and not again.any()  # a reopened shard starts afresh
