"""Stored rows or in-memory Samples -> one batch of uint8 NCHW tensors at a common height and width.

Width rule. fit="resize" (default, SRNet): every sample is scaled to height H (default 64) and to the
batch width W = the mean aspect-scaled width rounded to a multiple of 8 (cv2 INTER_LINEAR). fit="pad":
nothing is stretched horizontally: W is the widest aspect-scaled width rounded up to a multiple of 8
and narrower samples are padded on the right (grey 127 for i_t/t_t, 0 for masks and t_sk, edge
replication for i_s/t_b/t_f). fit="auto": "pad" for a batch whose widths differ by at most
pad_tolerance px (16), else "resize". `t_sk` stays one pixel thin at the batch resolution: the stored
skeleton is resized with INTER_LINEAR, every touched pixel kept (> 0), and that band is skeletonised
again. The band lies inside the resized glyph region because the same interpolation weights applied
to mask_t (which contains the glyphs) are non-zero there too.

Stored rows are checked before use (row checksums: verify="once" on the first read of a row by any
worker, "always" on every read); LZ4 images are decompressed by the shards codec straight into the
batch (single-channel images of the batch size) or a reusable cache-hot scratch buffer, skipping the
frame checksums of rows whose row checksum was verified.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import cv2
import numpy as np
import torch
from skimage.morphology import skeletonize as _skimage_skeletonize

from textsynth.errors import CorruptShardError
from textsynth.loading.transport import RING_HEADER, batch_buffer, package
from textsynth.sample import GREY, IMAGE_CHANNELS, IMAGE_KEYS, rounded_width
from textsynth.shards.encodings import get_codec
from textsynth.shards.reader import ShardReader
from textsynth.synth.skeleton import skeletonize

# Pad fill per key in fit="pad": a constant, or None for edge replication (backgrounds).
PAD_VALUES: dict[str, int | None] = {
    "i_s": None, "i_t": GREY, "t_sk": 0, "t_t": GREY, "t_b": None, "t_f": None, "mask_t": 0, "mask_s": 0,
}
FITS = ("resize", "pad", "auto")
VERIFY = ("once", "always")  # row checksums: first read of a row (by any worker), or every read
_KEY_BIT: dict[str, int] = {k: 1 << i for i, k in enumerate(IMAGE_KEYS)}
_ALL_BITS = sum(_KEY_BIT.values())  # a row whose checksum (or every LZ4 frame) was verified
_VERIFIED_CACHE = "loading.verified-images"  # ShardReader.mapping_cache name of the per-row bitmask


@dataclass(frozen=True)
class CollateOptions:
    """How samples become a batch: output height, width fit, width multiple, checksum policy, resampling."""

    height: int = 64
    fit: str = "resize"
    multiple: int = 8
    pad_tolerance: int = 16
    verify: str = "once"
    interpolation: int = cv2.INTER_LINEAR
    reskeletonize: bool = True

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {self.fit!r}")
        if self.height < 8 or self.multiple < 1:
            raise ValueError(f"need height >= 8 and multiple >= 1, got {self.height}, {self.multiple}")
        if self.verify not in VERIFY:
            raise ValueError(f"verify must be one of {VERIFY}, got {self.verify!r}")


def check_keys(keys: Iterable[str]) -> tuple[str, ...]:
    """`keys` as a tuple of distinct image keys (ValueError naming a bad one)."""
    keys = tuple(keys)
    bad = [k for k in keys if k not in IMAGE_CHANNELS]
    if bad or not keys:
        raise ValueError(f"keys must be a non-empty subset of {IMAGE_KEYS}, got {keys!r}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"keys {keys!r} lists a key twice")
    return keys


def batch_nbytes(batch: Mapping[str, Any]) -> int:
    """Bytes of the uint8 image tensors of a batch (what 'MB/s delivered' counts)."""
    return sum(v.numel() * v.element_size() for k, v in batch.items()
               if k in IMAGE_CHANNELS and isinstance(v, torch.Tensor))


def aspect_widths(widths: np.ndarray, heights: np.ndarray, height: int) -> np.ndarray:
    """Widths after scaling each sample to `height` (float64): the width-bucketing key of every mode."""
    return np.asarray(widths, np.float64) * height / np.asarray(heights, np.float64)


class BatchCollator:
    """Decoded samples -> one batch dict of uint8 NCHW tensors at height `height`, width a multiple of `multiple`.

    Used inside the workers of every mode; also usable by hand: `collate_samples(list_of_Sample)`.
    `ring_slots` reusable shared batch buffers per worker carry batches to the main process (0: off).
    """

    def __init__(self, keys: Sequence[str] = IMAGE_KEYS, options: CollateOptions = CollateOptions(),
                 ring_slots: int = 8) -> None:
        self.keys = check_keys(keys)
        self.options = options
        self.height = int(options.height)
        self.fit = options.fit
        self.multiple = int(options.multiple)
        self.interpolation = options.interpolation
        self.reskeletonize = options.reskeletonize
        self.ring_slots = min(int(ring_slots), RING_HEADER)
        self.verify = options.verify
        self.pad_tolerance = int(options.pad_tolerance)
        self.sample_bytes_hint = 0  # bytes of the widest sample at the batch height (sizes worker rings)

    # sizes
    def aspect_widths(self, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
        """Widths after scaling each sample to the batch height (float64)."""
        return aspect_widths(widths, heights, self.height)

    def target_widths(self, widths: np.ndarray, heights: np.ndarray) -> tuple[int, np.ndarray]:
        """(batch width W, per-sample content width): W for every sample when resizing, the sample's own
        aspect-scaled width (<= W, padded on the right) when padding."""
        aw = self.aspect_widths(widths, heights)
        m = self.multiple
        own = np.maximum(1, np.rint(aw)).astype(np.int64)
        if self.fit == "pad" or (self.fit == "auto" and int(own.max() - own.min()) <= self.pad_tolerance):
            return max(m, int(math.ceil(own.max() / m)) * m), own
        width = rounded_width(float(aw.mean()), m)
        return width, np.full(aw.shape, width, np.int64)

    def _allocate(self, batch: int, width: int) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor], Any]:
        """Batch buffers (numpy views for writing, torch views for the result) and the ring slot, if any."""
        h = self.height
        plane = batch * h * width
        sizes = {k: plane * IMAGE_CHANNELS[k] for k in self.keys}
        flat, where = batch_buffer(sum(sizes.values()), self.ring_slots, batch * self.sample_bytes_hint)
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
        return package(tensors, extras, arrays, where)

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
        for b, reader in enumerate(readers):
            groups.setdefault(id(reader), (reader, []))[1].append(b)
        row_ok = self._verify_rows(groups, rows_l, verified)
        for b, (reader, row) in enumerate(zip(readers, rows_l)):
            m = reader.row_meta(row, verify=False)
            ids.append(m.id)
            text_s.append(m.text_s)
            text_t.append(m.text_t)
            heights[b], widths[b] = m.height, m.width
        width, own = self.target_widths(widths, heights)
        arrays, tensors, where = self._allocate(n, width)
        codecs = {get_codec(r.encoding) for r, _ in groups.values()}
        decode = next(iter(codecs)).frame_decoder() if len(codecs) == 1 else None
        if decode is not None:
            self._decode_frames(decode, arrays, readers, rows_l, groups, heights, widths, own, verified, row_ok)
        else:
            scratch = _scratch(int((heights * widths).max()) * 3)
            for key in self.keys:
                c = IMAGE_CHANNELS[key]
                for b, (reader, row) in enumerate(zip(readers, rows_l)):
                    h, w = int(heights[b]), int(widths[b])
                    img = scratch[: h * w * c].reshape((h, w, 3) if c == 3 else (h, w))
                    base, starts, ends = reader.image_spans(key)
                    try:
                        get_codec(reader.encoding).decode_into(key, base[starts[row]:ends[row]], img)
                    except CorruptShardError as exc:
                        raise CorruptShardError(f"{reader.path}: row {row} image {key!r}: {exc}") from exc
                    self._put(arrays[key], b, key, img, int(own[b]))
        return self._finish(tensors, where, index if index is not None else np.asarray(rows_l), ids, text_s, text_t,
                            widths, heights)

    def _verify_rows(self, groups: dict[int, tuple[ShardReader, list[int]]], rows: list[int],
                     shared_bits: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        """Check the row checksums of a batch before anything of it is used (RowChecksumError names the row);
        returns which batch positions are covered by a verified row checksum.

        verify="once": only rows not yet verified (all bits of the row's bitmap entry set, by any worker
        when the bitmap is shared). verify="always": every row, every time. A verified row covers its
        compressed images, so their LZ4 frame checksums (XXH32 of the decompressed pixels, several times
        the cost) are skipped; format 1 shards have only those, and keep them.
        """
        row_ok = np.zeros(len(rows), bool)
        for reader, pos in groups.values():
            if not reader.has_checksums:
                continue  # a format 1 shard: it warned when opened, its LZ4 frames are still checked
            rws = np.array([rows[b] for b in pos], np.int64)
            row_ok[pos] = True
            if self.verify == "always":
                reader.verify_rows(rws, always=True)
                continue
            if shared_bits is not None:
                bm, where = shared_bits[0], np.asarray(shared_bits[1], np.int64)[pos]
            else:
                bm, where = _verified_bitmap(reader), rws
            need = bm[where] != _ALL_BITS
            if need.any():
                reader.verify_rows(rws[need], always=True)
                bm[where[need]] = _ALL_BITS
        return row_ok

    def _decode_frames(self, decode: Any, arrays: dict[str, np.ndarray], readers: Sequence[ShardReader],
                       rows: list[int], groups: dict[int, tuple[ShardReader, list[int]]], heights: np.ndarray,
                       widths: np.ndarray, own: np.ndarray, shared_bits: tuple[np.ndarray, np.ndarray] | None = None,
                       row_ok: np.ndarray | None = None) -> None:
        """LZ4 frames -> batch through the codec's by-address decoder: no Python bytes, no per-image allocation."""
        n = len(rows)
        h_out = self.height
        scratch = _scratch(int((heights * widths).max()) * 3)
        scratch_addr = scratch.ctypes.data
        hl, wl, ol = heights.tolist(), widths.tolist(), own.tolist()
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
            need = (verified & bit) == 0  # frame checksums only where neither row nor frame was verified
            check = (need & ~row_ok if row_ok is not None else need).tolist()
            sizes = (heights * widths * c).tolist()
            direct = ((heights == h_out) & (widths == own) & (own == w_out)).tolist() if c == 1 else [False] * n
            for b in range(n):
                size = sizes[b]
                err = decode(out_addr + b * stride if direct[b] else scratch_addr, size, sa[b], sl[b], check[b])
                if err is not None:
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


def _verified_bitmap(reader: ShardReader) -> np.ndarray:
    """Per-row bitmask (bit per image key) of LZ4 checksums this process verified in the reader's current
    mapping; a reopened (or, on object stores, re-downloaded) shard gets a fresh one."""
    return reader.mapping_cache(_VERIFIED_CACHE, lambda: np.zeros(len(reader), np.uint8))


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
