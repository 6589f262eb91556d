"""Map-style dataset over a dataset folder (local or s3://): `ds[indices] -> one collated batch`.

The object holds numpy arrays only (widths, heights, shard ends) and shard paths; shard files are
opened lazily inside each worker (readers pickle as their path), so forked workers do not touch
(copy-on-write) pages of Python object refcounts while reading.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow.fs as pafs
import torch
from torch.utils.data import Dataset as TorchDataset

from textsynth import atomic
from textsynth.errors import CorruptShardError
from textsynth.loading.collate import BatchCollator, CollateOptions
from textsynth.sample import IMAGE_CHANNELS, IMAGE_KEYS
from textsynth.shards import storage
from textsynth.shards.dataset import MANIFEST_NAME, read_manifest, shard_count
from textsynth.shards.integrity import check_identity, readable_entries
from textsynth.shards.reader import ShardReader, read_shard_sizes


class _Shards:
    """The shard files of a dataset as lazily opened readers (per process); LRU-bounded for object stores."""

    def __init__(self, fs: pafs.FileSystem, paths: Sequence[str], rows: np.ndarray, max_open: int | None,
                 expect: dict[str, Any] | None = None) -> None:
        self.fs = fs
        self.paths = list(paths)
        self.rows = rows
        self.max_open = max_open
        self.expect = expect  # {"manifest": {"fingerprint": ...}, "files": [...], "count": n}: identity checks
        self._open: OrderedDict[int, ShardReader] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"fs": self.fs, "paths": self.paths, "rows": self.rows, "max_open": self.max_open,
                "expect": self.expect}

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
        if self.expect is not None:
            e = self.expect
            check_identity(reader.identity, e["manifest"], e["files"][k], k, e["count"], reader.path)
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


def _read_sizes(fs: pafs.FileSystem, path: str, expect: tuple[Mapping[str, Any], str, int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(widths, heights) of one shard; its identity is checked against `expect` (manifest, file, position,
    count): ShardIdentityError naming it."""
    w, h, identity = read_shard_sizes(fs, path)
    check_identity(identity, expect[0], expect[1], expect[2], expect[3], path)
    return w, h


def _sizes_cached(fs: pafs.FileSystem, path: str, sha256: str, cache_dir: str | None,
                  expect: tuple[Mapping[str, Any], str, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Widths/heights of a shard; for object stores cached locally by the shard's sha256 (read once ever;
    a cached shard's identity is then checked by the worker that opens it)."""
    if storage.is_local(fs) or not cache_dir:
        return _read_sizes(fs, path, expect)
    cached = os.path.join(cache_dir, f"{sha256}.npy")
    try:
        wh = np.load(cached)
        return wh[0].astype(np.int32), wh[1].astype(np.int32)
    except (OSError, ValueError):
        pass
    w, h = _read_sizes(fs, path, expect)
    try:
        with atomic.writing(cached) as tmp:
            np.save(tmp, np.stack([w, h]))
    except OSError:
        pass
    return w, h


def default_size_cache_dir() -> str:
    """Where shard widths of object-store datasets are cached by sha256: ~/.cache/textsynth/sizes."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "textsynth", "sizes")


class ShardDataset(TorchDataset):
    """Map-style dataset over a textsynth dataset folder (local path or s3://...): `ds[indices] -> batch`.

    `ds[array_of_indices]` decodes only `keys` and returns one collated batch (see
    textsynth.loading.collate); `ds[i]` returns a batch of one. For object stores a worker keeps at
    most `max_open_shards` shards in memory (LRU; default 8).
    """

    def __init__(self, root: str | os.PathLike[str], keys: Sequence[str] = IMAGE_KEYS,
                 options: CollateOptions = CollateOptions(), *, filesystem: pafs.FileSystem | None = None,
                 max_open_shards: int | None = None, size_cache_dir: str | None = None,
                 allow_partial: bool = False, ring_slots: int = 8) -> None:
        fs, self.root = storage.locate(root, filesystem)
        manifest = read_manifest(fs, self.root)
        entries = readable_entries(fs, self.root, manifest, storage.join(self.root, MANIFEST_NAME), allow_partial)
        count = shard_count(manifest)
        expect = {"manifest": {"fingerprint": manifest.get("fingerprint")}, "files": [e["file"] for e in entries],
                  "count": count}
        self.encoding: str = manifest["encoding"]
        self.collator = BatchCollator(keys, options, ring_slots)
        rows = np.array([e["rows"] for e in entries], np.int64)
        paths = [storage.join(self.root, e["file"]) for e in entries]
        self.shard_ends = np.cumsum(rows)
        self.shard_starts = self.shard_ends - rows
        local = storage.is_local(fs)
        if max_open_shards is None and not local:
            max_open_shards = 8
        self._shards = _Shards(fs, paths, rows, max_open_shards, expect)
        cache = None if local else (size_cache_dir or default_size_cache_dir())
        ws, hs = [], []
        for k, (e, path, n) in enumerate(zip(entries, paths, rows)):
            w, h = _sizes_cached(fs, path, e["sha256"], cache, (manifest, e["file"], k, count))
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
    def is_local(self) -> bool:
        """Whether the shards are on a local filesystem (object stores get shard-local shuffling)."""
        return storage.is_local(self._shards.fs)

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
