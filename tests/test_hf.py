"""Hugging Face `datasets`: PNG/JPEG datasets open as images; textsynth.hf decodes every encoding on access.

Also the S3 convention HF uses (plain s3:// + AWS_ENDPOINT_URL, or fsspec storage_options), which
textsynth accepts too, against a SeaweedFS server on loopback.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from textsynth import recipes
from textsynth.sample import IMAGE_KEYS
from textsynth.shards import storage
from textsynth.shards.dataset import Dataset, shard_name, write_dataset_metadata
from textsynth.shards.writer import write_shard
from textsynth.synth.synthesizer import Synthesizer


datasets = pytest.importorskip("datasets")
N = 10


@pytest.fixture(scope="module")
def samples():
    syn = Synthesizer(recipes.load(pipeline="smoke", seed=21))
    return [syn.sample(i) for i in range(N)]


def write(root: str, samples, encoding: str, shards: int = 2, fs=None) -> None:
    parts = np.array_split(np.arange(len(samples)), shards)
    infos = [write_shard(storage.join(root, shard_name(k, shards)), [samples[i] for i in idx], encoding, fs)
             for k, idx in enumerate(parts)]
    write_dataset_metadata(fs, root, encoding, infos, seed=21)


def listing(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in root.iterdir()}


@pytest.mark.parametrize("encoding", ["lz4", "png", "jpeg"])
def test_hf_images_decode_on_access_without_copies(tmp_path, samples, encoding):
    import torch

    from textsynth.interop import hf

    write(str(tmp_path), samples, encoding)
    before = listing(tmp_path)
    ours = Dataset(tmp_path)
    plain = datasets.load_from_disk(str(tmp_path))  # the folder as HF sees it, no extra step
    if encoding == "lz4":
        assert plain.features["i_s"] == datasets.Value("binary")
    else:
        assert all(plain.features[k] == datasets.Image() for k in IMAGE_KEYS)
        img = plain[3]["i_s"]  # a PIL image
        assert img.size == (ours.widths[3], ours.heights[3])
        if encoding == "png":
            assert np.array_equal(np.asarray(img.convert("RGB")), ours.decode_image(3, "i_s"))
        assert np.array_equal(np.asarray(plain[3]["mask_t"]), ours.decode_image(3, "mask_t"))

    ds = hf.load(str(tmp_path))
    for i in range(N):
        row = ds[i]
        assert row["id"] == ours.row_meta(i).id and row["text_t"] == ours.row_meta(i).text_t
        for key in IMAGE_KEYS:
            assert isinstance(row[key], np.ndarray) and row[key].dtype == np.uint8
            assert np.array_equal(row[key], ours.decode_image(i, key))
    batch = ds[2:5]["t_sk"]
    assert [a.shape for a in batch] == [(ours.heights[i], ours.widths[i]) for i in range(2, 5)]

    dt = hf.load(str(tmp_path), keys=("i_s", "mask_t"), format="torch")
    row = dt[7]
    assert row["i_s"].dtype == torch.uint8 and row["i_s"].shape == (3, ours.heights[7], ours.widths[7])
    assert torch.equal(row["i_s"], torch.from_numpy(ours.decode_image(7, "i_s").copy()).permute(2, 0, 1))
    assert torch.equal(row["mask_t"][0], torch.from_numpy(ours.decode_image(7, "mask_t").copy()))
    assert isinstance(row["t_f"], (bytes, dict))  # keys not asked for stay encoded

    # the pitfall: shuffle/split/map on a dataset read from disk write cache files into its folder ...
    ds.shuffle(seed=1)
    assert any(name.startswith("cache-") for name in set(listing(tmp_path)) - set(before))
    for name in set(listing(tmp_path)) - set(before):
        (tmp_path / name).unlink()
    # ... and the README recipe: with HF caching off they go to a temporary folder instead
    datasets.disable_caching()
    try:
        split = ds.train_test_split(test_size=0.3, seed=0)
        shuffled = split["train"].shuffle(seed=1)
        assert len(shuffled) == 7 and isinstance(shuffled[0]["i_s"], np.ndarray)
    finally:
        datasets.enable_caching()
    assert listing(tmp_path) == before


def test_plain_s3_uri_with_aws_endpoint_url_or_storage_options(s3, samples, monkeypatch):
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3.endpoint}")
    uri = "s3://bucket/hfconv"
    fs, root = storage.locate(uri)  # plain URI: endpoint from AWS_ENDPOINT_URL
    write(root, samples[:4], "png", shards=1, fs=fs)
    got = Dataset(root, filesystem=fs)
    assert len(got) == 4 and np.array_equal(got.decode_image(1, "t_f"), samples[1].images["t_f"])

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    options = {"key": s3.access_key, "secret": s3.secret_key,
               "client_kwargs": {"endpoint_url": f"http://{s3.endpoint}", "region_name": s3.region}}
    fs2, root2 = storage.locate(uri, storage_options=options)  # the storage_options HF/fsspec take
    back = Dataset(root2, filesystem=fs2)
    assert [back.row_meta(i).id for i in range(4)] == [s.meta["id"] for s in samples[:4]]
    assert np.array_equal(back.decode_image(3, "i_s"), samples[3].images["i_s"])
    with pytest.raises(ValueError, match="unsupported storage_options key"):
        storage.locate(uri, storage_options={"endpoint": "x"})
    assert "AWS_ENDPOINT_URL" not in os.environ


def test_png_shards_written_before_the_image_struct_still_read(tmp_path, samples):
    import pyarrow as pa

    from textsynth.shards.reader import ShardReader

    path = tmp_path / "old.arrow"
    write_shard(str(path), samples[:3], "png")
    table = pa.ipc.open_stream(str(path)).read_all()
    cols = [c.combine_chunks().field("bytes") if pa.types.is_struct(c.type) else c.combine_chunks()
            for c in table.columns]
    fields = [pa.field(f.name, pa.binary() if pa.types.is_struct(f.type) else f.type) for f in table.schema]
    old = pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=table.schema.metadata))
    with pa.ipc.new_stream(str(path), old.schema) as w:
        w.write_table(old)
    reader = ShardReader(str(path))
    assert reader.encoding == "png" and len(reader) == 3
    assert np.array_equal(reader.decode_image(2, "t_b"), samples[2].images["t_b"])
