"""The loader constructors: make_loader (map-style), make_stream_loader (a growing folder), make_online_loader.

Each takes only the options its mode honours; the collate options (height, fit, multiple,
pad_tolerance, verify) become one CollateOptions, the DataLoader options one dict (workers.py).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import pyarrow.fs as pafs
from torch.utils.data import DataLoader

from textsynth.loading.collate import CollateOptions
from textsynth.loading.datasets import ShardDataset
from textsynth.loading.online import OnlineDataset
from textsynth.loading.sampler import WidthBucketBatchSampler
from textsynth.loading.streaming import StreamingShardDataset
from textsynth.loading.workers import dataloader_options, rank_world, ring_slots
from textsynth.sample import IMAGE_KEYS


class ShardLoader(DataLoader):
    """A torch DataLoader with `set_epoch(e)` forwarded to its width-bucketing sampler (or dataset)."""

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """New epoch; start_batch > 0 starts it at that batch (width-bucketing sampler only)."""
        if start_batch and not isinstance(self.sampler, WidthBucketBatchSampler):
            raise ValueError("start_batch needs a dataset read through its sampler (not a stream)")
        for obj in (self.sampler, self.dataset):
            if isinstance(obj, WidthBucketBatchSampler):
                obj.set_epoch(epoch, start_batch)
            elif hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)


def make_loader(root: str | os.PathLike[str], batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS, *,
                num_workers: int = 2, seed: int = 0, epoch: int = 0, rank: int | None = None,
                world_size: int | None = None, height: int = 64, fit: str = "resize", multiple: int = 8,
                pad_tolerance: int = 16, verify: str = "once", shuffle: bool = True, drop_last: bool = False,
                fill_last: bool = False, bucket_batches: int = 256, pin_memory: bool | str = "auto",
                persistent_workers: bool | None = None, prefetch_factor: int | None = None,
                worker_init_fn: Callable[[int], Any] | None = None, multiprocessing_context: Any = None,
                timeout: float = 0, filesystem: pafs.FileSystem | None = None, max_open_shards: int | None = None,
                shards_per_window: int | None = None, size_cache_dir: str | None = None,
                allow_partial: bool = False) -> ShardLoader:
    """A DataLoader of collated uint8 batches from the complete dataset at `root` (local path or s3://...).

    fit: "resize" (SRNet: every sample resized to the batch's mean aspect-scaled width rounded to a
    multiple of 8), "pad" (no horizontal resize; right-padded to the widest, rounded up to 8) or "auto"
    (pad when the batch's widths differ by <= pad_tolerance px, which width bucketing makes the common
    case, else resize). verify: row checksums on the first read of a row ("once") or on every read
    ("always"). rank/world_size default to torch.distributed's when it is initialised.
    Call `loader.set_epoch(e)` before each epoch (a new permutation from (seed, e)). pin_memory="auto"
    pins when CUDA is available. Persistent workers (default when num_workers > 0) keep their open
    shards and batch buffers between epochs. For object stores `shards_per_window` defaults to 4
    (shard-local shuffle; see WidthBucketBatchSampler), each worker keeps `max_open_shards` (8) shards in
    memory, and shard widths are cached under `size_cache_dir` (~/.cache/textsynth/sizes) by sha256.
    Every row's checksum is verified before it is used and each shard's identity when it is opened.
    A dataset whose manifest says complete: false or disagrees with itself is refused
    (IncompleteDatasetError) unless allow_partial=True; make_stream_loader follows one being written.
    """
    kw = dataloader_options(num_workers, pin_memory, persistent_workers, prefetch_factor, worker_init_fn,
                            multiprocessing_context, timeout)
    options = CollateOptions(height=height, fit=fit, multiple=multiple, pad_tolerance=pad_tolerance, verify=verify)
    ds = ShardDataset(root, keys, options, filesystem=filesystem, max_open_shards=max_open_shards,
                      size_cache_dir=size_cache_dir, allow_partial=allow_partial, ring_slots=ring_slots(kw))
    if shards_per_window is None and not ds.is_local:
        shards_per_window = 4
    sampler = WidthBucketBatchSampler(ds.widths, batch_size, heights=ds.heights, height=height, seed=seed,
                                      epoch=epoch, rank=rank, world_size=world_size, shuffle=shuffle,
                                      drop_last=drop_last, fill_last=fill_last, bucket_batches=bucket_batches,
                                      shard_ends=ds.shard_ends, shards_per_window=shards_per_window)
    return ShardLoader(ds, batch_size=None, sampler=sampler, **kw)


def make_stream_loader(root: str | os.PathLike[str], batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS, *,
                       num_workers: int = 2, seed: int = 0, epoch: int = 0, rank: int | None = None,
                       world_size: int | None = None, height: int = 64, fit: str = "resize", multiple: int = 8,
                       pad_tolerance: int = 16, verify: str = "once", drop_last: bool = False,
                       pin_memory: bool | str = "auto", persistent_workers: bool | None = None,
                       prefetch_factor: int | None = None, worker_init_fn: Callable[[int], Any] | None = None,
                       multiprocessing_context: Any = None, timeout: float = 0,
                       filesystem: pafs.FileSystem | None = None, stream_timeout: float = 600.0,
                       poll_interval: float = 1.0, on_timeout: str = "stop") -> ShardLoader:
    """A DataLoader following the dataset folder at `root` while it is written (see StreamingShardDataset).

    Batches come shard by shard as shards land (shuffled within the pool of landed rows, width bucketed);
    it stops once the manifest is complete and every shard was read, or after `stream_timeout` seconds
    without a new shard (on_timeout: "stop" warns and flushes, "raise" raises TimeoutError). Ranks may
    get different batch counts (the generator decides). Collate and DataLoader options as make_loader.
    """
    kw = dataloader_options(num_workers, pin_memory, persistent_workers, prefetch_factor, worker_init_fn,
                            multiprocessing_context, timeout)
    rank, world_size = rank_world(rank, world_size)
    options = CollateOptions(height=height, fit=fit, multiple=multiple, pad_tolerance=pad_tolerance, verify=verify)
    ds = StreamingShardDataset(root, batch_size, keys, options, seed=seed, epoch=epoch, rank=rank,
                               world_size=world_size, drop_last=drop_last, filesystem=filesystem,
                               timeout=stream_timeout, poll_interval=poll_interval, on_timeout=on_timeout,
                               ring_slots=ring_slots(kw))
    if num_workers > 0:
        kw["in_order"] = False  # take whichever worker's shard landed first
    return ShardLoader(ds, batch_size=None, **kw)


def make_online_loader(config: Any = "smoke", batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS, *,
                       num_samples: int | None = None, start: int = 0, seed: int | None = None,
                       num_workers: int = 2, rank: int | None = None, world_size: int | None = None,
                       height: int = 64, fit: str = "resize", multiple: int = 8, pad_tolerance: int = 16,
                       bucket_batches: int = 4, drop_last: bool = False, epoch: int = 0,
                       pin_memory: bool | str = "auto", persistent_workers: bool | None = None,
                       prefetch_factor: int | None = None, worker_init_fn: Callable[[int], Any] | None = None,
                       multiprocessing_context: Any = None, timeout: float = 0) -> ShardLoader:
    """A DataLoader rendering batches live from a recipe (pipeline name, config path or SynthConfig).

    Workers are not persistent by default when num_samples is set, so `loader.set_epoch(e)` reaches
    them (each epoch renders new samples; the renderer's pools are rebuilt per epoch, ~1-2 s).
    """
    rank, world_size = rank_world(rank, world_size)
    kw = dataloader_options(num_workers, pin_memory, persistent_workers if persistent_workers is not None
                            else (num_samples is None), prefetch_factor, worker_init_fn, multiprocessing_context,
                            timeout)
    options = CollateOptions(height=height, fit=fit, multiple=multiple, pad_tolerance=pad_tolerance)
    ds = OnlineDataset(config, batch_size, keys, options, num_samples=num_samples, start=start, seed=seed,
                       rank=rank, world_size=world_size, bucket_batches=bucket_batches, drop_last=drop_last,
                       epoch=epoch, ring_slots=ring_slots(kw))
    return ShardLoader(ds, batch_size=None, **kw)
