"""High-throughput training loader: sharded Arrow datasets (or a live recipe) -> collated uint8 batches.

Public API: `make_loader` (map-style, or stream=True), `make_online_loader`, `ShardDataset`,
`StreamingShardDataset`, `OnlineDataset`, `WidthBucketBatchSampler`, `BatchCollator`, `ShardLoader`
(a DataLoader with set_epoch), `to_device`, `worker_init`, `batch_nbytes`.

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
* LZ4 frames are decompressed by the system liblz4 (ctypes) from zero-copy views of the memory-mapped
  shard straight into the batch (single-channel images) or a reusable cache-hot scratch buffer; each
  frame's content checksum is verified on the process's first decode of that image (verify="once";
  shards are immutable, so a verified mapping cannot change; "always" re-verifies; without liblz4
  python-lz4 is used and always verifies). RGB is de-interleaved to planes with cv2.split (~3 us per
  image); resizing is cv2 INTER_LINEAR; `t_sk` is re-skeletonised only for samples actually resized.
* In a worker the batch is written into a reusable slot of a per-worker shared-memory ring (a fresh
  shared segment per batch costs ~2.5 us per 4 KiB page, about as much as decoding the batch) and
  crosses to the main process as one file descriptor; the slot is reused once the main process has
  dropped every tensor of that batch (see _RingBatch). Batches a consumer keeps are never overwritten.
* Shard files are opened lazily inside each worker (readers pickle as their path); the main process
  keeps only numpy arrays (widths, heights, shard offsets): no per-sample Python objects, so forked
  workers do not touch (copy-on-write) pages of Python object refcounts while reading.

Batch format (every mode): a dict with, for each requested image key, a uint8 tensor (B, 3, H, W) for
RGB or (B, 1, H, W) for t_sk / mask_t / mask_s (contiguous NCHW); "id", "text_s", "text_t" (lists of
str); "index" (int64 tensor: dataset row, recipe sample index, or shard << 32 | row when streaming);
"src_width" / "src_height" (int32 tensors: stored size of each sample). `to_device` moves a batch and
normalises it on the device.

Width rule. fit="resize" (default, SRNet): every sample is scaled to height H (default 64) and to the
batch width W = the mean aspect-scaled width rounded to a multiple of 8 (cv2 INTER_LINEAR). fit="pad":
nothing is stretched horizontally: W is the widest aspect-scaled width rounded up to a multiple of 8
and narrower samples are padded on the right (grey 127 for i_t/t_t, 0 for masks and t_sk, edge
replication for i_s/t_b/t_f). fit="auto": "pad" for a batch whose widths differ by at most
pad_tolerance px (16), else "resize". `t_sk` stays one pixel thin at the batch resolution: the stored
skeleton is resized with INTER_LINEAR, every touched pixel kept (> 0), and that band is skeletonised
again. The band lies inside the resized glyph region because the same interpolation weights applied
to mask_t (which contains the glyphs) are non-zero there too.
"""
from __future__ import annotations

import math
import os
import posixpath
import secrets
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import cv2
import lz4.frame
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import torch
from skimage.morphology import skeletonize as _skimage_skeletonize
from torch.utils.data import DataLoader, IterableDataset, Sampler, get_worker_info
from torch.utils.data import Dataset as TorchDataset

from textsynth.errors import CorruptShardError
from textsynth.sample import GREY, IMAGE_CHANNELS, IMAGE_KEYS
from textsynth.shards import storage
from textsynth.shards.dataset import MANIFEST_NAME, SHARD_NAME_RE, read_manifest
from textsynth.shards.reader import ShardReader
from textsynth.skeleton import skeletonize

__all__ = [
    "BatchCollator", "OnlineDataset", "ShardDataset", "ShardLoader", "StreamingShardDataset",
    "WidthBucketBatchSampler", "batch_nbytes", "make_loader", "make_online_loader", "to_device",
    "worker_init",
]

RGB_KEYS: tuple[str, ...] = tuple(k for k in IMAGE_KEYS if IMAGE_CHANNELS[k] == 3)
MASK_KEYS: tuple[str, ...] = tuple(k for k in IMAGE_KEYS if IMAGE_CHANNELS[k] == 1)
# Pad fill per key in fit="pad": a constant, or None for edge replication (backgrounds).
PAD_VALUES: dict[str, int | None] = {
    "i_s": None, "i_t": GREY, "t_sk": 0, "t_t": GREY, "t_b": None, "t_f": None, "mask_t": 0, "mask_s": 0,
}
FITS = ("resize", "pad", "auto")
VERIFY = ("once", "always")  # LZ4 content checksums: first decode per process, or every decode


def _check_keys(keys: Iterable[str]) -> tuple[str, ...]:
    keys = tuple(keys)
    bad = [k for k in keys if k not in IMAGE_CHANNELS]
    if bad or not keys:
        raise ValueError(f"keys must be a non-empty subset of {IMAGE_KEYS}, got {keys!r}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"keys {keys!r} lists a key twice")
    return keys


def _in_worker() -> bool:
    return get_worker_info() is not None


def worker_init(worker_id: int | None = None) -> None:
    """DataLoader worker_init_fn: one thread for OpenCV and torch (parallelism comes from processes)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class _ChainInit:
    """worker_init then the user's worker_init_fn (a class, so it pickles for spawn/forkserver)."""

    def __init__(self, user: Callable[[int], Any] | None) -> None:
        self.user = user

    def __call__(self, worker_id: int) -> None:
        worker_init(worker_id)
        if self.user is not None:
            self.user(worker_id)


def _identity(batch: Any) -> Any:
    return batch


def _dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
    rank = 0 if rank is None else int(rank)
    world_size = 1 if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


# --- collate -------------------------------------------------------------------------------------

def batch_nbytes(batch: Mapping[str, Any]) -> int:
    """Bytes of the uint8 image tensors of a batch (what 'MB/s delivered' counts)."""
    return sum(v.numel() * v.element_size() for k, v in batch.items()
               if k in IMAGE_CHANNELS and isinstance(v, torch.Tensor))


def _alloc(nbytes: int, shared: bool) -> torch.Tensor:
    """A flat uint8 tensor; shared=True backs it by a fresh shared-memory segment (the slow path)."""
    if shared:
        storage_ = torch.UntypedStorage._new_shared(max(nbytes, 1))
        return torch.empty(0, dtype=torch.uint8).set_(storage_, 0, (nbytes,))
    return torch.empty(nbytes, dtype=torch.uint8)


# Worker -> main batch transport. A fresh shared-memory segment per batch costs ~2.5 us per 4 KiB page
# (the kernel allocates and zeroes every page: ~8 ms for a 12 MB batch, more than decoding it), so each
# worker writes batches into a ring of reusable slots inside ONE shared segment. A slot's flag (in the
# segment's header) is 1 while the main process holds any tensor of that batch: the main process
# rebuilds the batch as views of its own mapping of the ring and a finalizer clears the flag when the
# last view dies (after pin_memory's copy, or when the training step drops the batch). A worker that
# finds no free slot (a consumer keeping many batches alive) falls back to a fresh segment, so nothing
# ever waits or is overwritten. The batch pickles as (ring, slot, layout): one file descriptor per batch.
_RING_HEADER = 64  # bytes of slot flags; at most this many slots


class _Ring:
    def __init__(self, slots: int, slot_bytes: int) -> None:
        self.slots = slots
        self.slot_bytes = slot_bytes
        total = _RING_HEADER + slots * slot_bytes
        self.tensor = _alloc(total, shared=True)  # pages materialise on first write only
        self.np = self.tensor.numpy()
        self.np[:_RING_HEADER] = 0
        self.token = f"{os.getpid()}-{secrets.token_hex(8)}"

    def acquire(self) -> int | None:
        free = np.flatnonzero(self.np[:self.slots] == 0)
        if free.size == 0:
            return None
        slot = int(free[0])
        self.np[slot] = 1
        return slot

    def offset(self, slot: int) -> int:
        return _RING_HEADER + slot * self.slot_bytes


_worker_ring: _Ring | None = None


def _ring_slot(nbytes: int, slots: int, hint: int = 0) -> tuple[_Ring, int] | None:
    """A free slot of this worker's ring able to hold nbytes (sized by `hint`, the largest batch expected;
    without one the ring grows by replacement). Pages of a slot are only allocated once written."""
    global _worker_ring
    ring = _worker_ring
    if ring is None or ring.slot_bytes < nbytes or ring.slots != slots:
        size = max(nbytes, hint, ring.slot_bytes if ring is not None else 0)
        if size > hint:
            size = int(size * 1.5)  # headroom for wider batches
        size = -(-size // 4096) * 4096
        ring = _worker_ring = _Ring(slots, size)
    slot = ring.acquire()
    return None if slot is None else (ring, slot)


_main_rings: OrderedDict[str, np.ndarray] = OrderedDict()
_MAIN_RINGS_KEPT = 32


def _release_slot(ring_np: np.ndarray, slot: int) -> None:
    ring_np[slot] = 0


class _SlotOwner:
    """Shared by a worker-side batch and its copies: the slot is freed if all of them die unsent."""

    __slots__ = ("sent", "__weakref__")

    def __init__(self, ring_np: np.ndarray, slot: int) -> None:
        self.sent = [False]
        weakref.finalize(self, _free_unsent, ring_np, slot, self.sent)


def _free_unsent(ring_np: np.ndarray, slot: int, sent: list[bool]) -> None:
    if not sent[0]:
        ring_np[slot] = 0


class _RingBatch(dict):
    """A worker-side batch living in a ring slot; pickles as (ring, slot, layout) and unpickles as a dict.

    Entries a user's collate_fn added or replaced in the worker travel as ordinary pickled values
    (copy.copy, as torch's default_convert does, keeps the slot). A batch dropped in the worker
    without being sent frees its slot again.
    """

    __slots__ = ("ring", "layout", "originals", "arrays", "owner")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        ring, slot, off, nbytes = self.ring
        layout = [entry for entry in self.layout if self.get(entry[0]) is self.originals[entry[0]]]
        in_ring = {entry[0] for entry in layout}
        # small metadata tensors travel as numpy (pickled by value: no extra shared-memory segment each)
        arrays = {k: a for k, a in self.arrays.items() if self.get(k) is self.originals[k]}
        others = {k: v for k, v in self.items() if k not in in_ring and k not in arrays}
        self.owner.sent[0] = True  # sent: the receiving process owns the slot now
        return (_rebuild_ring_batch, (ring.tensor, ring.token, slot, off, nbytes, layout, arrays, others, list(self)))

    def __copy__(self) -> "_RingBatch":
        clone = _RingBatch(self)
        clone.ring, clone.layout, clone.originals = self.ring, self.layout, self.originals
        clone.arrays, clone.owner = self.arrays, self.owner  # one slot, one owner
        return clone


def _rebuild_ring_batch(ring_tensor: torch.Tensor, token: str, slot: int, offset: int, nbytes: int,
                        layout: list[tuple[str, tuple[int, ...], int]], arrays: dict[str, np.ndarray],
                        others: dict[str, Any], order: list[str]) -> dict[str, Any]:
    ring_np = _main_rings.get(token)
    if ring_np is None:
        pid = token.split("-", 1)[0] + "-"
        for old in [t for t in _main_rings if t.startswith(pid)]:  # that worker replaced its ring
            del _main_rings[old]  # (batches still alive keep their own reference)
        ring_np = _main_rings[token] = ring_tensor.numpy()
        while len(_main_rings) > _MAIN_RINGS_KEPT:
            _main_rings.popitem(last=False)
    else:
        _main_rings.move_to_end(token)
    view = ring_np[offset: offset + nbytes]
    weakref.finalize(view, _release_slot, ring_np, slot)
    flat = torch.from_numpy(view)  # every tensor below keeps `view` alive; its death frees the slot
    batch: dict[str, Any] = {}
    for key, shape, pos in layout:
        batch[key] = flat[pos: pos + int(np.prod(shape))].view(shape)
    for key, value in arrays.items():
        batch[key] = torch.from_numpy(value)
    batch.update(others)
    return {k: batch[k] for k in order}


class BatchCollator:
    """Decoded samples -> one batch dict of uint8 NCHW tensors at height `height`, width a multiple of `multiple`.

    Used inside the workers of every mode; also usable by hand: `collate_samples(list_of_Sample)`.
    """

    def __init__(self, keys: Sequence[str] = IMAGE_KEYS, height: int = 64, fit: str = "resize",
                 multiple: int = 8, interpolation: int = cv2.INTER_LINEAR, reskeletonize: bool = True,
                 ring_slots: int = 8, verify: str = "once", pad_tolerance: int = 16) -> None:
        self.keys = _check_keys(keys)
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
        if height < 8 or multiple < 1:
            raise ValueError(f"need height >= 8 and multiple >= 1, got {height}, {multiple}")
        self.height = int(height)
        self.fit = fit
        self.multiple = int(multiple)
        self.interpolation = interpolation
        self.reskeletonize = reskeletonize
        self.ring_slots = min(int(ring_slots), _RING_HEADER)  # reusable shared batch buffers per worker (0: off)
        if verify not in VERIFY:
            raise ValueError(f"verify must be one of {VERIFY}, got {verify!r}")
        self.verify = verify
        self.pad_tolerance = int(pad_tolerance)
        self.sample_bytes_hint = 0  # bytes of the widest sample at the batch height (sizes worker rings)

    # sizes
    def aspect_widths(self, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """Widths after scaling each sample to the batch height (float64)."""
        return np.asarray(widths, np.float64) * self.height / np.asarray(heights, np.float64)

    def target_widths(self, widths: np.ndarray, heights: np.ndarray) -> tuple[int, np.ndarray]:
        """(batch width W, per-sample content width): W for every sample when resizing, the sample's own
        aspect-scaled width (<= W, padded on the right) when padding."""
        aw = self.aspect_widths(widths, heights)
        m = self.multiple
        own = np.maximum(1, np.rint(aw)).astype(np.int64)
        if self.fit == "pad" or (self.fit == "auto" and int(own.max() - own.min()) <= self.pad_tolerance):
            return max(m, int(math.ceil(own.max() / m)) * m), own
        width = max(m, int(round(aw.mean() / m)) * m)
        return width, np.full(aw.shape, width, np.int64)

    def _allocate(self, batch: int, width: int) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor], Any]:
        """Batch buffers (numpy views for writing, torch views for the result) and the ring slot, if any."""
        h = self.height
        plane = batch * h * width
        sizes = {k: plane * IMAGE_CHANNELS[k] for k in self.keys}
        nbytes = sum(sizes.values())
        where = None
        if _in_worker() and self.ring_slots > 0:
            got = _ring_slot(nbytes, self.ring_slots, batch * self.sample_bytes_hint)
            if got is not None:
                ring, slot = got
                off = ring.offset(slot)
                flat = ring.tensor[off: off + nbytes]
                where = (ring, slot, off, nbytes)
            else:
                flat = _alloc(nbytes, shared=True)
        else:
            flat = _alloc(nbytes, shared=_in_worker())
        arrays, tensors, pos = {}, {}, 0
        for k in self.keys:
            t = flat[pos: pos + sizes[k]].view(batch, IMAGE_CHANNELS[k], h, width)
            tensors[k] = t
            arrays[k] = t.numpy()  # shares memory
            pos += sizes[k]
        return arrays, tensors, where

    def _put(self, out: np.ndarray, b: int, key: str, img: np.ndarray, wb: int) -> None:
        """Write one decoded (h, w[, 3]) image into slot b of out (B, C, H, W), scaled to H x wb, padded to W."""
        h_out, w_out = out.shape[2], out.shape[3]
        if img.shape[0] != h_out or img.shape[1] != wb:
            if key == "t_sk" and self.reskeletonize:
                img = _thin(cv2.resize(img, (wb, h_out), interpolation=cv2.INTER_LINEAR))
            else:
                img = cv2.resize(img, (wb, h_out), interpolation=self.interpolation)
        pad = w_out - wb
        if img.ndim == 3:  # de-interleave RGB into the three contiguous planes of the slot
            if pad:  # fit="pad": content on the left, fill on the right
                fill = PAD_VALUES[key]
                img = cv2.copyMakeBorder(img, 0, 0, 0, pad, cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_CONSTANT,
                                         value=(fill or 0,) * 3, dst=_buffer("padded", h_out * w_out * 3).reshape(h_out, w_out, 3))
            cv2.split(img, [out[b, 0], out[b, 1], out[b, 2]])
        elif pad:
            fill = PAD_VALUES[key]
            cv2.copyMakeBorder(img, 0, 0, 0, pad, cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_CONSTANT,
                               value=fill or 0, dst=out[b, 0])
        else:
            out[b, 0] = img

    def _finish(self, tensors: dict[str, torch.Tensor], where: Any, index: np.ndarray, ids: list[str],
                text_s: list[str], text_t: list[str], widths: np.ndarray, heights: np.ndarray) -> dict[str, Any]:
        extras: dict[str, Any] = {
            "id": ids, "text_s": text_s, "text_t": text_t, "index": np.asarray(index, np.int64).copy(),
            "src_width": np.asarray(widths, np.int32).copy(), "src_height": np.asarray(heights, np.int32).copy(),
        }
        arrays = {k: v for k, v in extras.items() if isinstance(v, np.ndarray)}
        for k, v in arrays.items():
            extras[k] = torch.from_numpy(v)
        if where is None:
            return {**tensors, **extras}
        ring, slot, off, nbytes = where
        batch = _RingBatch(tensors)
        batch.update(extras)
        batch.arrays = arrays
        batch.ring = where
        layout, pos = [], 0
        for k, t in tensors.items():
            layout.append((k, tuple(t.shape), pos))
            pos += t.numel()
        batch.layout = layout
        batch.originals = dict(batch)
        batch.owner = _SlotOwner(ring.np, slot)
        return batch

    def collate_samples(self, samples: Sequence[Any], index: Sequence[int] | None = None) -> dict[str, Any]:
        """Collate in-memory Samples (online mode, tests)."""
        n = len(samples)
        if n == 0:
            raise ValueError("cannot collate an empty batch")
        ref = self.keys[0]
        widths = np.array([s.images[ref].shape[1] for s in samples], np.int64)
        heights = np.array([s.images[ref].shape[0] for s in samples], np.int64)
        width, own = self.target_widths(widths, heights)
        arrays, tensors, where = self._allocate(n, width)
        for b, s in enumerate(samples):
            for key in self.keys:
                self._put(arrays[key], b, key, s.images[key], int(own[b]))
        idx = np.asarray(index if index is not None else [s.meta.get("index", -1) for s in samples], np.int64)
        return self._finish(tensors, where, idx, [str(s.meta.get("id", "")) for s in samples],
                            [s.meta.get("text_s", "") for s in samples], [s.meta.get("text_t", "") for s in samples],
                            widths, heights)

    def collate_rows(self, readers: Sequence[ShardReader], rows: Sequence[int], index: np.ndarray | None = None,
                     verified: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
        """Collate rows of shards: sample b is row rows[b] of readers[b]. Only self.keys are decoded.

        `verified` = (bitmask array, positions): where this batch's LZ4-checksum bits live (a bitmap
        shared by all workers of a local dataset); default: a bitmap per open shard mapping.
        """
        n = len(rows)
        if n == 0:
            raise ValueError("cannot collate an empty batch")
        rows_l = [int(r) for r in rows]
        heights = np.empty(n, np.int64)
        widths = np.empty(n, np.int64)
        ids, text_s, text_t = [], [], []
        groups: dict[int, tuple[ShardReader, list[int]]] = {}
        for b, (reader, row) in enumerate(zip(readers, rows_l)):
            m = reader.row_meta(row)
            ids.append(m.id)
            text_s.append(m.text_s)
            text_t.append(m.text_t)
            heights[b], widths[b] = m.height, m.width
            groups.setdefault(id(reader), (reader, []))[1].append(b)
        width, own = self.target_widths(widths, heights)
        arrays, tensors, where = self._allocate(n, width)
        for reader, _ in groups.values():
            _check_encoding(reader)
        fast = _LZ4 is not None and all(r.encoding == "lz4" for r, _ in groups.values())
        if fast:
            self._decode_lz4_batch(arrays, readers, rows_l, groups, heights, widths, own, verified)
        else:
            scratch = _scratch(int((heights * widths).max()) * 3)
            for key in self.keys:
                c = IMAGE_CHANNELS[key]
                for b, (reader, row) in enumerate(zip(readers, rows_l)):
                    h, w = int(heights[b]), int(widths[b])
                    img = scratch[: h * w * c].reshape((h, w, 3) if c == 3 else (h, w))
                    base, starts, ends = reader.image_spans(key)
                    _decode_into(reader, row, key, base[starts[row]:ends[row]], img)
                    self._put(arrays[key], b, key, img, int(own[b]))
        return self._finish(tensors, where, index if index is not None else np.asarray(rows_l), ids, text_s, text_t,
                            widths, heights)

    def _decode_lz4_batch(self, arrays: dict[str, np.ndarray], readers: Sequence[ShardReader], rows: list[int],
                          groups: dict[int, tuple[ShardReader, list[int]]], heights: np.ndarray,
                          widths: np.ndarray, own: np.ndarray,
                          shared_bits: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """LZ4 frames -> batch through liblz4, by address: no Python bytes, no per-image allocation."""
        lz = _LZ4
        assert lz is not None
        n = len(rows)
        h_out = self.height
        scratch = _scratch(int((heights * widths).max()) * 3)
        scratch_addr = scratch.ctypes.data
        hl, wl, ol = heights.tolist(), widths.tolist(), own.tolist()
        local = lz.context()
        decompress, ctx, skip = lz.lib.LZ4F_decompress, local.ctx, lz.skip_opts
        dst_v, src_v, dst_p, src_p = local.dst, local.src, local.dst_p, local.src_p
        src_addr = np.empty(n, np.int64)
        src_len = np.empty(n, np.int64)
        if shared_bits is not None:
            bitmaps = [shared_bits]
            verified = shared_bits[0][shared_bits[1]]
        else:
            verified = np.empty(n, np.uint8)
            bitmaps = []
            for reader, pos in groups.values():
                bm = _verified_bitmap(reader)
                rws = np.array([rows[b] for b in pos], np.int64)
                bitmaps.append((bm, rws))
                verified[pos] = bm[rws]
        for key in self.keys:
            bit = _KEY_BIT[key]
            c = IMAGE_CHANNELS[key]
            out = arrays[key]
            out_addr, stride = out.ctypes.data, out.strides[0]
            w_out = out.shape[3]
            for reader, pos in groups.values():
                base, starts, ends = reader.image_spans(key)
                rws = np.array([rows[b] for b in pos], np.int64)
                src_addr[pos] = base.ctypes.data + starts[rws]
                src_len[pos] = ends[rws] - starts[rws]
            sa, sl = src_addr.tolist(), src_len.tolist()
            check = ((verified & bit) == 0).tolist() if lz.can_skip else [True] * n
            sizes = (heights * widths * c).tolist()
            direct = ((heights == h_out) & (widths == own) & (own == w_out)).tolist() if c == 1 else [False] * n
            for b in range(n):
                size, srclen = sizes[b], sl[b]
                dst_v.value = size
                src_v.value = srclen
                ret = decompress(ctx, out_addr + b * stride if direct[b] else scratch_addr, dst_p, sa[b], src_p,
                                 None if check[b] else skip)
                if ret or dst_v.value != size or src_v.value != srclen:
                    err = lz.failure(ret, size, srclen)
                    raise CorruptShardError(f"{readers[b].path}: row {rows[b]} image {key!r}: lz4 payload does not "
                                            f"decompress to {hl[b]}x{wl[b]}x{c}: {err}")
                if not direct[b]:
                    h, w = hl[b], wl[b]
                    self._put(out, b, key, scratch[:size].reshape((h, w, 3) if c == 3 else (h, w)), ol[b])
            if self.verify == "once":  # (a lost update between two workers only means one more check)
                for bm, rws in bitmaps:
                    bm[rws] |= bit


def _thin(band: np.ndarray) -> np.ndarray:
    """0/255 one-pixel skeleton of `band > 0` (the linearly resized skeleton): skimage's thinning, plus
    textsynth.skeleton's removal of leftover 2x2 squares in the rare case it leaves one."""
    on = _skimage_skeletonize(band > 0)
    if (on[:-1, :-1] & on[1:, :-1] & on[:-1, 1:] & on[1:, 1:]).any():
        return skeletonize(band, threshold=1)
    return on.view(np.uint8) * np.uint8(255)


_KEY_BIT: dict[str, int] = {k: 1 << i for i, k in enumerate(IMAGE_KEYS)}
_verified: dict[int, tuple[Any, np.ndarray]] = {}


def _verified_bitmap(reader: ShardReader) -> np.ndarray:
    """Per-row bitmask (bit per image key) of LZ4 checksums this process verified in the reader's current
    mapping. Shards are immutable once renamed into place, so a verified image cannot change while the
    mapping lives; a reopened (or, on object stores, re-downloaded) shard gets a fresh bitmap."""
    state = reader._state  # the open mapping (private to textsynth.shards; identity is what matters)
    entry = _verified.get(id(state))
    if entry is None or entry[0]() is not state:
        bm = np.zeros(len(reader), np.uint8)
        ref = weakref.ref(state, lambda _r, key=id(state): _verified.pop(key, None))
        _verified[id(state)] = entry = (ref, bm)
    return entry[1]


_tls = threading.local()  # scratch buffers are per thread: two loaders in two threads never share one


def _buffer(name: str, nbytes: int) -> np.ndarray:
    """This thread's reusable flat uint8 buffer `name` of at least nbytes (cache-hot; no per-image allocation)."""
    buffers = getattr(_tls, "buffers", None)
    if buffers is None:
        buffers = _tls.buffers = {}
    buf = buffers.get(name)
    if buf is None or buf.size < nbytes:
        buf = buffers[name] = np.empty(max(nbytes, 2 * (buf.size if buf is not None else 0)), np.uint8)
    return buf[:nbytes]


def _scratch(nbytes: int) -> np.ndarray:
    """The decode buffer: every image is decompressed here unless it can go straight into the batch."""
    return _buffer("scratch", nbytes)


def _check_encoding(reader: ShardReader) -> None:
    if reader.encoding not in ("lz4", "raw", "png", "jpeg"):
        raise CorruptShardError(f"{reader.path}: unknown image encoding {reader.encoding!r}")


def _decode_into(reader: ShardReader, row: int, key: str, payload: np.ndarray, dst: np.ndarray) -> None:
    """Decode one stored image into the contiguous array `dst` (its shape is the stored size); errors name the file."""
    enc = reader.encoding
    if enc == "lz4":
        try:
            _lz4_into(payload, dst)
        except ValueError as exc:
            raise CorruptShardError(f"{reader.path}: row {row} image {key!r}: lz4 payload does not "
                                    f"decompress to {dst.shape}: {exc}") from exc
    elif enc == "raw":
        if payload.size != dst.size:
            raise CorruptShardError(f"{reader.path}: row {row} image {key!r}: {payload.size} bytes, expected "
                                    f"{dst.size} for {dst.shape}")
        dst.reshape(-1)[:] = payload
    else:
        dst[...] = reader.decode_image(row, key)


class _Lz4Frame:
    """LZ4 frame decompression straight into a caller's buffer via the system liblz4 (ctypes).

    python-lz4 can only return a new bytes object (an allocation and an extra pass per image); this
    writes into the batch or a reusable scratch buffer, reuses one decompression context per thread
    (a forked worker gets its own copy), and can skip the frame's content checksum (XXH32, ~40% of the
    decode time) for images this process has already verified. Unavailable -> python-lz4 is used.
    """

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("lz4") or "liblz4.so.1"
        lib = ctypes.CDLL(name)
        version = lib.LZ4_versionNumber()
        if version < 10803:  # LZ4F_resetDecompressionContext appeared in 1.8.3
            raise OSError(f"{name} {version} is too old")
        size_p = ctypes.POINTER(ctypes.c_size_t)

        class Options(ctypes.Structure):  # LZ4F_decompressOptions_t
            _fields_ = [("stableDst", ctypes.c_uint), ("skipChecksums", ctypes.c_uint),
                        ("reserved1", ctypes.c_uint), ("reserved0", ctypes.c_uint)]

        lib.LZ4F_decompress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, size_p, ctypes.c_void_p, size_p,
                                        ctypes.c_void_p]
        lib.LZ4F_decompress.restype = ctypes.c_size_t
        lib.LZ4F_isError.argtypes = [ctypes.c_size_t]
        lib.LZ4F_isError.restype = ctypes.c_uint
        lib.LZ4F_getErrorName.argtypes = [ctypes.c_size_t]
        lib.LZ4F_getErrorName.restype = ctypes.c_char_p
        lib.LZ4F_createDecompressionContext.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
        lib.LZ4F_resetDecompressionContext.argtypes = [ctypes.c_void_p]
        lib.LZ4F_resetDecompressionContext.restype = None
        self.ctypes = ctypes
        self.lib = lib
        self.version = version
        self.can_skip = version >= 10904  # skipChecksums exists from lz4 1.9.4
        self._skip = Options(0, 1, 0, 0)  # kept alive: skip_opts is its address
        self.skip_opts = ctypes.addressof(self._skip) if self.can_skip else None
        self.local = threading.local()

    def context(self) -> Any:
        """This thread's decompression context and size cells (ctx, dst, src, dst_p, src_p)."""
        local = self.local
        ctx = getattr(local, "ctx", None)
        if ctx is None:
            ctx = self.ctypes.c_void_p()
            if self.lib.LZ4F_createDecompressionContext(self.ctypes.byref(ctx), 100):  # LZ4F_VERSION
                raise OSError("LZ4F_createDecompressionContext failed")
            local.ctx = ctx
            local.dst, local.src = self.ctypes.c_size_t(), self.ctypes.c_size_t()
            local.dst_p, local.src_p = self.ctypes.byref(local.dst), self.ctypes.byref(local.src)
        return local

    def into(self, dst_addr: int, dst_len: int, src_addr: int, src_len: int, verify: bool = True) -> str | None:
        """Decompress one whole frame of exactly dst_len bytes; None on success, else what went wrong."""
        local = self.context()
        local.dst.value = dst_len
        local.src.value = src_len
        ret = self.lib.LZ4F_decompress(local.ctx, dst_addr, local.dst_p, src_addr, local.src_p,
                                       None if verify else self.skip_opts)
        if ret == 0 and local.dst.value == dst_len and local.src.value == src_len:
            return None
        return self.failure(ret, dst_len, src_len)

    def failure(self, ret: int, dst_len: int, src_len: int) -> str:
        """Reset this thread's context after a failed call and say what went wrong."""
        local = self.context()
        self.lib.LZ4F_resetDecompressionContext(local.ctx)
        if self.lib.LZ4F_isError(ret):
            return self.lib.LZ4F_getErrorName(ret).decode()
        return (f"frame incomplete or of the wrong size (wrote {local.dst.value} of {dst_len} bytes, "
                f"read {local.src.value} of {src_len})")


def _make_lz4() -> _Lz4Frame | None:
    if os.environ.get("TEXTSYNTH_NO_LIBLZ4"):
        return None
    try:
        return _Lz4Frame()
    except (OSError, AttributeError):
        return None


_LZ4 = _make_lz4()


def _lz4_into(src: np.ndarray, dst: np.ndarray) -> None:
    """Decompress the LZ4 frame `src` into contiguous `dst` (exact size required); ValueError if it does not."""
    if _LZ4 is not None:
        err = _LZ4.into(dst.ctypes.data, dst.nbytes, src.ctypes.data, src.nbytes)
        if err is not None:
            raise ValueError(err)
        return
    try:
        raw = lz4.frame.decompress(src)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from exc
    if len(raw) != dst.nbytes:
        raise ValueError(f"{len(raw)} bytes, expected {dst.nbytes}")
    dst.reshape(-1)[:] = np.frombuffer(raw, np.uint8)


# --- shards on disk ------------------------------------------------------------------------------

class _Shards:
    """The shard files of a dataset as lazily opened readers (per process); LRU-bounded for object stores."""

    def __init__(self, fs: pafs.FileSystem, paths: Sequence[str], rows: np.ndarray, max_open: int | None) -> None:
        self.fs = fs
        self.paths = list(paths)
        self.rows = rows
        self.max_open = max_open
        self._open: OrderedDict[int, ShardReader] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"fs": self.fs, "paths": self.paths, "rows": self.rows, "max_open": self.max_open}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open = OrderedDict()

    def get(self, k: int) -> ShardReader:
        reader = self._open.get(k)
        if reader is not None:
            self._open.move_to_end(k)
            return reader
        reader = ShardReader(self.paths[k], self.fs).open()
        if len(reader) != int(self.rows[k]):
            raise CorruptShardError(f"{reader.path}: {len(reader)} rows, manifest says {int(self.rows[k])}")
        self._open[k] = reader
        if self.max_open is not None:
            while len(self._open) > self.max_open:
                _, old = self._open.popitem(last=False)
                old.close()
        return reader

    def close(self) -> None:
        for reader in self._open.values():
            reader.close()
        self._open.clear()


def _read_sizes(fs: pafs.FileSystem, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(widths, heights) of one shard without validating or indexing its image columns."""
    try:
        if storage.is_local(fs):
            with pa.memory_map(path, "r") as f:
                table = pa.ipc.open_stream(f).read_all()
        else:
            with fs.open_input_file(path) as f:
                table = pa.ipc.open_stream(f).read_all()
        w = table.column("width").to_numpy().astype(np.int32)
        h = table.column("height").to_numpy().astype(np.int32)
    except FileNotFoundError as exc:
        raise CorruptShardError(f"{path}: shard file is missing") from exc
    except (pa.ArrowException, OSError, EOFError, ValueError, KeyError) as exc:
        raise CorruptShardError(f"{path}: corrupt or truncated shard: {type(exc).__name__}: {exc}") from exc
    return w, h


def _sizes_cached(fs: pafs.FileSystem, path: str, sha256: str, cache_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Widths/heights of a shard; for object stores cached locally by the shard's sha256 (read once ever)."""
    if storage.is_local(fs) or not cache_dir:
        return _read_sizes(fs, path)
    cached = os.path.join(cache_dir, f"{sha256}.npy")
    try:
        wh = np.load(cached)
        return wh[0].astype(np.int32), wh[1].astype(np.int32)
    except (OSError, ValueError):
        pass
    w, h = _read_sizes(fs, path)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{cached}.{os.getpid()}.tmp.npy"
        np.save(tmp, np.stack([w, h]))
        os.replace(tmp, cached)
    except OSError:
        pass
    return w, h


def _default_cache_dir() -> str:
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "textsynth", "sizes")


class ShardDataset(TorchDataset):
    """Map-style dataset over a textsynth dataset folder (local path or s3://...): `ds[indices] -> batch`.

    `ds[array_of_indices]` decodes only `keys` and returns one collated batch (see the module doc);
    `ds[i]` returns a batch of one. The object holds numpy arrays only (widths, heights, shard ends) and
    shard paths; shard files are memory-mapped lazily in whichever process reads them (each worker).
    For object stores a worker keeps at most `max_open_shards` shards in memory (LRU; default 8).
    """

    def __init__(self, root: str | os.PathLike[str], keys: Sequence[str] = IMAGE_KEYS, height: int = 64,
                 fit: str = "resize", multiple: int = 8, filesystem: pafs.FileSystem | None = None,
                 max_open_shards: int | None = None, size_cache_dir: str | None = None,
                 **collate_options: Any) -> None:
        fs, self.root = storage.resolve(root, filesystem)
        manifest = read_manifest(fs, self.root)
        entries = manifest["shards"]
        self.encoding: str = manifest["encoding"]
        self.collator = BatchCollator(keys, height, fit, multiple, **collate_options)
        rows = np.array([e["rows"] for e in entries], np.int64)
        paths = [storage.join(self.root, e["file"]) for e in entries]
        self.shard_ends = np.cumsum(rows)
        self.shard_starts = self.shard_ends - rows
        local = storage.is_local(fs)
        if max_open_shards is None and not local:
            max_open_shards = 8
        self._shards = _Shards(fs, paths, rows, max_open_shards)
        cache = None if local else (size_cache_dir or _default_cache_dir())
        ws, hs = [], []
        for e, path, n in zip(entries, paths, rows):
            w, h = _sizes_cached(fs, path, e["sha256"], cache)
            if w.size != n:
                raise CorruptShardError(f"{path}: {w.size} rows, manifest says {int(n)}")
            ws.append(w)
            hs.append(h)
        self.widths = np.concatenate(ws) if ws else np.empty(0, np.int32)
        self.heights = np.concatenate(hs) if hs else np.empty(0, np.int32)
        for a in (self.widths, self.heights, self.shard_ends, self.shard_starts):
            a.setflags(write=False)
        # LZ4 checksums verified by any process, one bit per image key per row: local shards are the same
        # immutable bytes in every worker, so one verification serves all of them (object stores: each
        # worker downloads its own copy, verified per copy instead)
        self._verified = torch.zeros(len(self) if local else 0, dtype=torch.uint8).share_memory_()
        if self.widths.size:
            c = self.collator
            widest = int(math.ceil(float(c.aspect_widths(self.widths, self.heights).max()) / c.multiple)) * c.multiple
            c.sample_bytes_hint = c.height * (widest + c.multiple) * sum(IMAGE_CHANNELS[k] for k in c.keys)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.collator.keys

    @property
    def shard_paths(self) -> list[str]:
        return list(self._shards.paths)

    def __len__(self) -> int:
        return int(self.shard_ends[-1]) if self.shard_ends.size else 0

    def __getstate__(self) -> dict[str, Any]:
        # Workers get paths and offsets only: widths/heights stay in the main process (the sampler's job).
        state = dict(self.__dict__)
        state["widths"] = state["heights"] = None
        return state

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard index, row within shard) arrays for global indices."""
        idx = np.asarray(indices, np.int64)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices out of range for dataset with {n} rows: {idx.min()}..{idx.max()}")
        k = np.searchsorted(self.shard_ends, idx, side="right")
        return k, idx - self.shard_starts[k]

    def __getitem__(self, indices: Any) -> dict[str, Any]:
        idx = np.atleast_1d(np.asarray(indices, np.int64))
        shard, row = self.locate(idx)
        readers = [self._shards.get(int(k)) for k in shard]
        shared = (self._verified.numpy(), idx) if self._verified.numel() else None
        return self.collator.collate_rows(readers, row, index=idx, verified=shared)

    def close(self) -> None:
        """Drop this process's open shards (they reopen lazily)."""
        self._shards.close()


# --- sampler -------------------------------------------------------------------------------------

def _tail_sizes(n: int, batch_size: int, world: int) -> np.ndarray:
    """Batch sizes (count a multiple of world, each 1..batch_size, summing to n), full batches first."""
    m = -(-n // (world * batch_size))
    total = world * m
    if n < total:
        raise ValueError(f"{n} samples cannot fill {total} batches on {world} ranks without repeats; "
                         "use fill_last=True or drop_last=True")
    sizes = np.full(total, batch_size, np.int64)
    excess = total * batch_size - n
    if excess:
        k = world
        while k * batch_size - excess < k:  # the last k batches must hold >= 1 sample each
            k += world
        tail = k * batch_size - excess
        sizes[total - k:] = tail // k + (np.arange(k) < tail % k)
    return sizes


class WidthBucketBatchSampler(Sampler):
    """Batches of dataset indices: global shuffle from (seed, epoch), width bucketing, DDP rank sharding.

    Per epoch: permute all indices with np.random.default_rng([seed, epoch]) (no global RNG); cut the
    permutation into windows of `bucket_batches * batch_size`, sort each window by aspect-scaled width
    and chunk it into batches; shuffle the order of all batches; rank r takes batches r, r + W, ...
    (W = world_size). Every rank therefore gets the same number of batches:

    * drop_last=False, fill_last=False (default): every sample exactly once per epoch across ranks; the batch
      count is a multiple of world_size and the last few batches are smaller (balanced, >= 1 sample).
      Raises ValueError if that is impossible (fewer samples than ranks).
    * fill_last=True: the permutation is extended with its own first samples so every batch is full
      (a few samples appear twice per epoch, as in torch's DistributedSampler).
    * drop_last=True: the permutation's last samples are dropped so every batch is full (which samples
      are dropped changes every epoch).

    `shard_ends` + `shards_per_window` (object stores): instead of a global permutation, shards are
    permuted and taken `shards_per_window` at a time, and batch order is shuffled only within a window,
    so a worker touches a few shards at a time. shuffle=False: sequential order, bucketing kept.
    """

    def __init__(self, widths: np.ndarray, batch_size: int = 64, *, heights: np.ndarray | None = None,
                 height: int = 64, seed: int = 0, epoch: int = 0, rank: int | None = 0, world_size: int | None = 1,
                 shuffle: bool = True, drop_last: bool = False, fill_last: bool = False, bucket_batches: int = 256,
                 shard_ends: np.ndarray | None = None, shards_per_window: int | None = None) -> None:
        if batch_size < 1 or bucket_batches < 1:
            raise ValueError(f"need batch_size >= 1 and bucket_batches >= 1, got {batch_size}, {bucket_batches}")
        if drop_last and fill_last:
            raise ValueError("give drop_last or fill_last, not both")
        widths = np.asarray(widths, np.float64)
        heights = np.full(widths.shape, height, np.float64) if heights is None else np.asarray(heights, np.float64)
        self.key = widths * height / heights  # aspect-scaled width at the batch height
        self.key.setflags(write=False)
        self.n = int(widths.size)
        self.batch_size = int(batch_size)
        self.rank, self.world_size = _dist_rank_world(rank, world_size)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.start_batch = 0  # resume: deliver this rank's batches from here on (indices only, nothing decoded)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.fill_last = fill_last
        self.bucket_batches = int(bucket_batches)
        self.shard_ends = None if shard_ends is None else np.asarray(shard_ends, np.int64)
        self.shards_per_window = shards_per_window
        if shards_per_window is not None and self.shard_ends is None:
            raise ValueError("shards_per_window needs shard_ends")
        if not (drop_last or fill_last) and self.n:
            _tail_sizes(self.n, self.batch_size, self.world_size)  # fail now, not at iteration

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch: the permutation is a pure function of (seed, epoch). start_batch skips this
        rank's first batches of the epoch without reading them (a resumed run's data position)."""
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def __len__(self) -> int:
        per_round = self.world_size * self.batch_size
        if self.drop_last:
            return self.n // per_round
        return -(-self.n // per_round)

    def _permutation(self, rng: np.random.Generator) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        if self.shards_per_window is None or self.shard_ends is None:
            return rng.permutation(self.n).astype(np.int64)
        starts = np.concatenate([[0], self.shard_ends[:-1]])
        order = rng.permutation(len(self.shard_ends))
        parts = []
        for g in range(0, len(order), self.shards_per_window):
            group = np.concatenate([np.arange(starts[k], self.shard_ends[k]) for k in order[g:g + self.shards_per_window]])
            parts.append(rng.permutation(group))
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

    def global_batches(self) -> list[np.ndarray]:
        """All ranks' batches of the current epoch, in delivery order (rank r takes [r::world_size])."""
        if self.n == 0:
            return []
        rng = np.random.default_rng([self.seed, self.epoch])
        perm = self._permutation(rng)
        bs, world = self.batch_size, self.world_size
        if self.drop_last:
            used = (self.n // (world * bs)) * world * bs
            perm = perm[:used]
            sizes = np.full(used // bs, bs, np.int64)
        elif self.fill_last:
            total = -(-self.n // (world * bs)) * world * bs
            perm = np.resize(perm, total)
            sizes = np.full(total // bs, bs, np.int64)
        else:
            sizes = _tail_sizes(self.n, bs, world)
        window = self.bucket_batches * bs
        for s in range(0, perm.size, window):
            part = perm[s:s + window]
            perm[s:s + window] = part[np.argsort(self.key[part], kind="stable")]
        batches = np.split(perm, np.cumsum(sizes)[:-1])
        if self.shuffle:
            if self.shards_per_window is None:
                order = rng.permutation(len(batches))
            else:  # keep locality: shuffle within windows of bucket_batches batches
                order = np.concatenate([s + rng.permutation(min(self.bucket_batches, len(batches) - s))
                                        for s in range(0, len(batches), self.bucket_batches)])
            batches = [batches[i] for i in order]
        return batches

    def batches(self) -> list[np.ndarray]:
        """This rank's batches of the current epoch."""
        return self.global_batches()[self.rank::self.world_size]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches()[self.start_batch:])


# --- DataLoader ----------------------------------------------------------------------------------

class ShardLoader(DataLoader):
    """A torch DataLoader with `set_epoch(e)` forwarded to its width-bucketing sampler (or dataset)."""

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """New epoch; start_batch > 0 starts it at that batch (width-bucketing sampler only)."""
        if start_batch and not isinstance(self.sampler, WidthBucketBatchSampler):
            raise ValueError("start_batch needs a dataset read through its sampler (not stream=True)")
        for obj in (self.sampler, self.dataset):
            if isinstance(obj, WidthBucketBatchSampler):
                obj.set_epoch(epoch, start_batch)
            elif hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)


def _loader_kwargs(num_workers: int, pin_memory: bool | str, persistent_workers: bool | None,
                   prefetch_factor: int | None, worker_init_fn: Callable[[int], Any] | None,
                   multiprocessing_context: Any, timeout: float) -> dict[str, Any]:
    if pin_memory == "auto":
        pin_memory = torch.cuda.is_available()
    kw: dict[str, Any] = {"num_workers": num_workers, "pin_memory": bool(pin_memory),
                          "collate_fn": _identity, "worker_init_fn": _ChainInit(worker_init_fn)}
    if num_workers > 0:
        kw["persistent_workers"] = True if persistent_workers is None else persistent_workers
        kw["prefetch_factor"] = prefetch_factor or 4
        kw["multiprocessing_context"] = multiprocessing_context
        kw["timeout"] = timeout
    return kw


def make_loader(root: str | os.PathLike[str], batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS, *,
                num_workers: int = 2, seed: int = 0, epoch: int = 0, rank: int | None = None,
                world_size: int | None = None, height: int = 64, fit: str = "resize", multiple: int = 8,
                pad_tolerance: int = 16, verify: str = "once", shuffle: bool = True, drop_last: bool = False,
                fill_last: bool = False, bucket_batches: int = 256, pin_memory: bool | str = "auto",
                persistent_workers: bool | None = None, prefetch_factor: int | None = None,
                worker_init_fn: Callable[[int], Any] | None = None, multiprocessing_context: Any = None,
                timeout: float = 0, filesystem: pafs.FileSystem | None = None, max_open_shards: int | None = None,
                shards_per_window: int | None = None, size_cache_dir: str | None = None, stream: bool = False,
                stream_timeout: float = 600.0, poll_interval: float = 1.0) -> ShardLoader:
    """A DataLoader of collated uint8 batches from the dataset at `root` (local path or s3://...).

    fit: "resize" (SRNet: every sample resized to the batch's mean aspect-scaled width rounded to a
    multiple of 8), "pad" (no horizontal resize; right-padded to the widest, rounded up to 8) or "auto"
    (pad when the batch's widths differ by <= pad_tolerance px, which width bucketing makes the common
    case, else resize). verify: LZ4 checksums on a process's first decode of an image ("once") or on
    every decode ("always"). rank/world_size default to torch.distributed's when it is initialised.
    Call `loader.set_epoch(e)` before each epoch (a new permutation from (seed, e)). pin_memory="auto"
    pins when CUDA is available. Persistent workers (default when num_workers > 0) keep their open
    shards and batch buffers between epochs. For object stores `shards_per_window` defaults to 4
    (shard-local shuffle; see WidthBucketBatchSampler), each worker keeps `max_open_shards` (8) shards in
    memory, and shard widths are cached under `size_cache_dir` (~/.cache/textsynth/sizes) by sha256.
    stream=True follows a folder still being written (see StreamingShardDataset); shuffle/fill_last/
    bucket_batches do not apply there, and ranks may get different batch counts (the generator decides).
    """
    kw = _loader_kwargs(num_workers, pin_memory, persistent_workers, prefetch_factor, worker_init_fn,
                        multiprocessing_context, timeout)
    collate = {"pad_tolerance": pad_tolerance, "verify": verify,
               "ring_slots": (kw.get("prefetch_factor") or 2) + 2}
    if stream:
        rank, world_size = _dist_rank_world(rank, world_size)
        ds = StreamingShardDataset(root, batch_size, keys, height=height, fit=fit, multiple=multiple, seed=seed,
                                   epoch=epoch, rank=rank, world_size=world_size, drop_last=drop_last,
                                   filesystem=filesystem, timeout=stream_timeout, poll_interval=poll_interval,
                                   **collate)
        if num_workers > 0:
            kw["in_order"] = False  # take whichever worker's shard landed first
        return ShardLoader(ds, batch_size=None, **kw)
    ds = ShardDataset(root, keys, height, fit, multiple, filesystem=filesystem, max_open_shards=max_open_shards,
                      size_cache_dir=size_cache_dir, **collate)
    if shards_per_window is None and not storage.is_local(ds._shards.fs):
        shards_per_window = 4
    sampler = WidthBucketBatchSampler(ds.widths, batch_size, heights=ds.heights, height=height, seed=seed,
                                      epoch=epoch, rank=rank, world_size=world_size, shuffle=shuffle,
                                      drop_last=drop_last, fill_last=fill_last, bucket_batches=bucket_batches,
                                      shard_ends=ds.shard_ends, shards_per_window=shards_per_window)
    return ShardLoader(ds, batch_size=None, sampler=sampler, **kw)


# --- streaming -----------------------------------------------------------------------------------

def _shard_index(name: str) -> int:
    m = SHARD_NAME_RE.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a shard file name")
    return int(m.group(1))


def _list_shards(fs: pafs.FileSystem, root: str) -> list[str]:
    """Final shard names present now (writers rename atomically / upload whole objects: listed = complete)."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return []
    return sorted(posixpath.basename(i.path) for i in infos
                  if i.type == pafs.FileType.File and SHARD_NAME_RE.match(posixpath.basename(i.path)))


def _worker_slot(rank: int, world_size: int) -> tuple[int, int]:
    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world_size * nw


class StreamingShardDataset(IterableDataset):
    """Follows a dataset folder while it is generated: yields batches from each shard as it lands.

    Shard `data-K-of-N.arrow` belongs to worker slot K mod (world_size * num_workers) (slot = rank *
    num_workers + worker id), so every shard is read exactly once across ranks and workers. Each slot
    polls the folder every `poll_interval` s for final shard names (writers rename atomically, so a
    listed name is a complete file), pools the new shard's rows with the previous remainder, shuffles
    them with rng(seed, epoch, K), sorts by width, emits full batches and keeps the remainder. It stops
    when textsynth.json exists and all its shards owned by the slot were read (the remainder goes out
    as a last, smaller batch unless drop_last), or when no new shard appeared for `timeout` seconds
    (a warning, then the same flush; on_timeout="raise" raises TimeoutError instead).
    """

    def __init__(self, root: str | os.PathLike[str], batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS, *,
                 height: int = 64, fit: str = "resize", multiple: int = 8, seed: int = 0, epoch: int = 0,
                 rank: int = 0, world_size: int = 1, drop_last: bool = False,
                 filesystem: pafs.FileSystem | None = None, timeout: float = 600.0, poll_interval: float = 1.0,
                 on_timeout: str = "stop", **collate_options: Any) -> None:
        self._fs, self.root = storage.resolve(root, filesystem)
        self.collator = BatchCollator(keys, height, fit, multiple, **collate_options)
        self.batch_size = int(batch_size)
        self.seed, self.epoch = int(seed), int(epoch)
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)
        if on_timeout not in ("stop", "raise"):
            raise ValueError(f"on_timeout must be 'stop' or 'raise', got {on_timeout!r}")
        self.on_timeout = on_timeout

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _manifest(self) -> dict[str, Any] | None:
        if storage.file_size(self._fs, storage.join(self.root, MANIFEST_NAME)) is None:
            return None
        return read_manifest(self._fs, self.root)

    def _batches(self, readers: list[ShardReader], pool_r: np.ndarray, pool_row: np.ndarray,
                 rng: np.random.Generator, final: bool) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
        """Split the pool into width-sorted full batches (shuffled order) and a random remainder."""
        bs = self.batch_size
        perm = rng.permutation(pool_r.size)
        keep = 0 if final else pool_r.size % bs
        rest, use = perm[:keep], perm[keep:]
        key = np.array([readers[r].widths[row] * self.collator.height / readers[r].heights[row]
                        for r, row in zip(pool_r[use], pool_row[use])], np.float64)
        use = use[np.argsort(key, kind="stable")]
        chunks = [use[s:s + bs] for s in range(0, use.size, bs)]
        if final and self.drop_last and chunks and chunks[-1].size < bs:
            chunks.pop()
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        return [(pool_r[c], pool_row[c]) for c in chunks], pool_r[rest], pool_row[rest]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots = _worker_slot(self.rank, self.world_size)
        readers: list[ShardReader] = []
        shard_ids: list[int] = []
        remaining: list[int] = []
        pool_r = np.empty(0, np.int64)
        pool_row = np.empty(0, np.int64)
        seen: set[str] = set()
        last_new = time.monotonic()

        def emit(batches: list[tuple[np.ndarray, np.ndarray]]) -> Iterator[dict[str, Any]]:
            for rs, rows in batches:
                rdrs = [readers[int(r)] for r in rs]
                index = np.array([(shard_ids[int(r)] << 32) | int(row) for r, row in zip(rs, rows)], np.int64)
                yield self.collator.collate_rows(rdrs, rows, index=index)
                for r in rs:
                    remaining[int(r)] -= 1
                    if remaining[int(r)] == 0:
                        readers[int(r)].close()

        while True:
            manifest = self._manifest()
            listed = _list_shards(self._fs, self.root)
            mine = [n for n in listed if n not in seen and _shard_index(n) % slots == slot]
            expected_rows = {e["file"]: int(e["rows"]) for e in manifest["shards"]} if manifest else {}
            for name in mine:
                seen.add(name)
                k = _shard_index(name)
                reader = ShardReader(storage.join(self.root, name), self._fs).open()
                if name in expected_rows and len(reader) != expected_rows[name]:
                    raise CorruptShardError(f"{reader.path}: {len(reader)} rows, manifest says {expected_rows[name]}")
                readers.append(reader)
                shard_ids.append(k)
                remaining.append(len(reader))
                r = len(readers) - 1
                pool_r = np.concatenate([pool_r, np.full(len(reader), r, np.int64)])
                pool_row = np.concatenate([pool_row, np.arange(len(reader), dtype=np.int64)])
                rng = np.random.default_rng([self.seed, self.epoch, k])
                batches, pool_r, pool_row = self._batches(readers, pool_r, pool_row, rng, final=False)
                yield from emit(batches)
                last_new = time.monotonic()
            if manifest is not None and manifest.get("complete", True):  # generate marks in-progress manifests
                owned = {e["file"] for e in manifest["shards"] if _shard_index(e["file"]) % slots == slot}
                if owned <= seen:
                    break
            if not mine:
                if time.monotonic() - last_new > self.timeout:
                    msg = (f"{self.root}: no new shard for {self.timeout:.0f} s and no complete manifest "
                           f"(read {len(seen)} shard(s) in worker slot {slot}/{slots})")
                    if self.on_timeout == "raise":
                        raise TimeoutError(msg)
                    warnings.warn(msg + "; stopping", RuntimeWarning, stacklevel=2)
                    break
                time.sleep(self.poll_interval)
        if pool_r.size:
            rng = np.random.default_rng([self.seed, self.epoch, 2**31 - 1, slot])
            batches, _, _ = self._batches(readers, pool_r, pool_row, rng, final=True)
            yield from emit(batches)
        for reader in readers:
            reader.close()


# --- online --------------------------------------------------------------------------------------

class OnlineDataset(IterableDataset):
    """Renders samples straight from a recipe in the workers (no disk), in the same batch format.

    Worker k of n (across ranks: slot = rank * n + k of world_size * n) renders sample indices
    start + slot, start + slot + slots, ... (up to start + num_samples, or forever when num_samples is
    None), buffers `bucket_batches * batch_size` of them, sorts by width and emits batches. Sample i is
    byte-identical whatever the worker count (Synthesizer seeds it from (seed, i)). With num_samples
    set, epoch e renders indices start + e * num_samples onwards (fresh samples every epoch); the
    DataLoader must then re-create its workers per epoch (make_online_loader's default) for
    set_epoch to reach them.
    """

    def __init__(self, config: Any = "smoke", batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS, *,
                 num_samples: int | None = None, start: int = 0, seed: int | None = None, height: int = 64,
                 fit: str = "resize", multiple: int = 8, rank: int = 0, world_size: int = 1,
                 bucket_batches: int = 4, drop_last: bool = False, epoch: int = 0,
                 **collate_options: Any) -> None:
        from textsynth import recipes
        from textsynth.config import SynthConfig

        if isinstance(config, SynthConfig):
            cfg = config if seed is None else config.replace(seed=seed)
        elif isinstance(config, str) and (config.endswith(".toml") or config.endswith(".json") or os.sep in config):
            cfg = recipes.resolve(config, None, seed)
        else:
            cfg = recipes.resolve(None, config, seed)
        self.config = cfg
        self.collator = BatchCollator(keys, height, fit, multiple, **collate_options)
        self.batch_size = int(batch_size)
        self.num_samples = num_samples
        self.start = int(start)
        self.rank, self.world_size = rank, world_size
        self.bucket_batches = max(1, int(bucket_batches))
        self.drop_last = drop_last
        self.epoch = int(epoch)
        self._synth = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_synth"] = None  # pools are built inside each worker
        return state

    def _indices(self, slot: int, slots: int) -> Iterator[int]:
        first = self.start + (self.epoch * self.num_samples if self.num_samples is not None else 0)
        i = first + slot
        stop = None if self.num_samples is None else first + self.num_samples
        while stop is None or i < stop:
            yield i
            i += slots

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from textsynth.synth import Synthesizer

        if self._synth is None:
            self._synth = Synthesizer(self.config)
        slot, slots = _worker_slot(self.rank, self.world_size)
        window = self.bucket_batches * self.batch_size
        buf: list[Any] = []
        for i in self._indices(slot, slots):
            buf.append(self._synth.sample(i))
            if len(buf) == window:
                yield from self._emit(buf)
                buf = []
        if buf:
            yield from self._emit(buf)

    def _emit(self, buf: list[Any]) -> Iterator[dict[str, Any]]:
        buf = sorted(buf, key=lambda s: s.images["i_s"].shape[1] / s.images["i_s"].shape[0])
        for s in range(0, len(buf), self.batch_size):
            chunk = buf[s:s + self.batch_size]
            if self.drop_last and len(chunk) < self.batch_size:
                return
            yield self.collator.collate_samples(chunk, index=[c.meta["index"] for c in chunk])


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
    rank, world_size = _dist_rank_world(rank, world_size)
    kw = _loader_kwargs(num_workers, pin_memory, persistent_workers if persistent_workers is not None
                        else (num_samples is None), prefetch_factor, worker_init_fn, multiprocessing_context, timeout)
    ds = OnlineDataset(config, batch_size, keys, num_samples=num_samples, start=start, seed=seed, height=height,
                       fit=fit, multiple=multiple, rank=rank, world_size=world_size,
                       bucket_batches=bucket_batches, drop_last=drop_last, epoch=epoch,
                       pad_tolerance=pad_tolerance, ring_slots=(kw.get("prefetch_factor") or 2) + 2)
    return ShardLoader(ds, batch_size=None, **kw)


# --- device --------------------------------------------------------------------------------------

def to_device(batch: Mapping[str, Any], device: torch.device | str, channels_last: bool = False,
              dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Move a batch to `device` (uint8, non_blocking) and normalise there: RGB -> [-1, 1], masks/t_sk -> [0, 1].

    The float conversion happens after the transfer (4x fewer bytes cross the bus); the images go
    through the trainer's own `to_device_normalised`, so there is one definition of the
    normalisation. Non-image entries (texts, ids) pass through; other tensors are moved as they are.
    """
    from .srnet.step import to_device_normalised

    out = to_device_normalised(batch, device, channels_last, dtype)
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) and k not in IMAGE_CHANNELS else v
            for k, v in out.items()}
