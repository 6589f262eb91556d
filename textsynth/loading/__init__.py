"""High-throughput training loader: sharded Arrow datasets (or a live recipe) -> collated uint8 batches.

Public API: `make_loader` (map-style over a complete dataset), `make_stream_loader` (a dataset still
being written), `make_online_loader` (rendering live), the datasets behind them (`ShardDataset`,
`StreamingShardDataset`, `OnlineDataset`), `WidthBucketBatchSampler` and `width_buckets` (the one
width-bucketing rule of every mode), `BatchCollator` + `CollateOptions`, `ShardLoader` (a DataLoader
with set_epoch), `to_device` / `to_device_normalised`, `worker_init`, `batch_nbytes`.

Design (why it is fast)
-----------------------
* Map-style dataset + batch sampler, `DataLoader(batch_size=None)`: the sampler (main process) does the
  global shuffle and width bucketing and sends each worker a small int64 array of sample indices; the
  worker's `__getitem__(indices)` decodes and collates the whole batch in one call. There is no
  per-sample Python dispatch through the DataLoader fetcher, no per-sample tensors, and DataLoader's
  prefetching, persistent workers and pin-memory thread still apply. (An IterableDataset would need
  every worker to re-derive the sampler and would lose DataLoader-driven ordering; it is used only for
  the streaming and online modes, where there is no index space to sample from.)
* Batches are grouped by width (sort a shuffled window by width, chunk, shuffle batch order), so a
  batch's widths differ by a few pixels: the SRNet resize is a few percent, and fit="auto" can pad
  instead of resizing at all.
* LZ4 frames are decompressed by the system liblz4 (the shards lz4 codec's by-address decoder) from
  zero-copy views of the memory-mapped shard straight into the batch (single-channel images) or a
  reusable cache-hot scratch buffer. Each row's checksum (XXH3 over everything the row stores: images,
  texts, meta) is verified on the first read of that row by any worker (verify="once"; shards are
  immutable, so a verified mapping cannot change; "always" re-verifies every read); a verified row's
  LZ4 frame checksums (XXH32 of the decompressed pixels, several times dearer) are then skipped.
  Format 1 shards without row checksums fall back to the LZ4 frame checksums; without liblz4
  python-lz4 is used and always verifies them. RGB is de-interleaved to planes with cv2.split (~3 us
  per image); resizing is cv2 INTER_LINEAR; `t_sk` is re-skeletonised only for samples actually resized.
* In a worker the batch is written into a reusable slot of a per-worker shared-memory ring and crosses
  to the main process as one file descriptor (transport.py). Batches a consumer keeps are never overwritten.
* Shard files are opened lazily inside each worker (readers pickle as their path); the main process
  keeps only numpy arrays (widths, heights, shard offsets): no per-sample Python objects, so forked
  workers do not touch (copy-on-write) pages of Python object refcounts while reading.

Batch format (every mode): a dict with, for each requested image key, a uint8 tensor (B, 3, H, W) for
RGB or (B, 1, H, W) for t_sk / mask_t / mask_s (contiguous NCHW); "id", "text_s", "text_t" (lists of
str); "index" (int64 tensor: dataset row, recipe sample index, or shard << 32 | row when streaming);
"src_width" / "src_height" (int32 tensors: stored size of each sample). `to_device` moves a batch and
normalises it on the device. The width rule is in collate.py.

Modules: api (constructors), sampler (width bucketing), collate, transport (shared-memory ring),
datasets (map-style), streaming, online, normalise (device normalisation), workers (process plumbing).
"""
from __future__ import annotations

from textsynth.loading.api import ShardLoader, make_loader, make_online_loader, make_stream_loader
from textsynth.loading.collate import BatchCollator, CollateOptions, batch_nbytes
from textsynth.loading.datasets import ShardDataset
from textsynth.loading.normalise import to_device, to_device_normalised
from textsynth.loading.online import OnlineDataset
from textsynth.loading.sampler import WidthBucketBatchSampler, width_buckets
from textsynth.loading.streaming import StreamingShardDataset
from textsynth.loading.workers import dataloader_options, worker_init

__all__ = [
    "BatchCollator", "CollateOptions", "OnlineDataset", "ShardDataset", "ShardLoader", "StreamingShardDataset",
    "WidthBucketBatchSampler", "batch_nbytes", "dataloader_options", "make_loader", "make_online_loader",
    "make_stream_loader", "to_device", "to_device_normalised", "width_buckets", "worker_init",
]
