"""Streaming dataset: follows a dataset folder while it is generated, batching each shard as it lands."""
from __future__ import annotations

import os
import posixpath
import time
import warnings
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow.fs as pafs
from torch.utils.data import IterableDataset

from textsynth.errors import CorruptShardError
from textsynth.loading.collate import BatchCollator, CollateOptions
from textsynth.loading.sampler import chunk_sizes, width_buckets
from textsynth.loading.workers import worker_slot
from textsynth.sample import IMAGE_KEYS
from textsynth.shards import storage
from textsynth.shards.dataset import MANIFEST_NAME, read_manifest
from textsynth.shards.integrity import SHARD_NAME_RE
from textsynth.shards.integrity import check_identity
from textsynth.shards.reader import ShardReader


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

    def __init__(self, root: str | os.PathLike[str], batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS,
                 options: CollateOptions = CollateOptions(), *, seed: int = 0, epoch: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, filesystem: pafs.FileSystem | None = None,
                 timeout: float = 600.0, poll_interval: float = 1.0, on_timeout: str = "stop",
                 ring_slots: int = 8) -> None:
        self._fs, self.root = storage.locate(root, filesystem)
        self.collator = BatchCollator(keys, options, ring_slots)
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

    def _batches(self, key: np.ndarray, rng: np.random.Generator, final: bool) -> tuple[list[np.ndarray], np.ndarray]:
        """Split the pool (positions 0..key.size-1) into width-sorted full batches in shuffled order, and a
        random remainder kept for the next shard (none when final: a last smaller batch unless drop_last)."""
        bs = self.batch_size
        perm = rng.permutation(key.size)
        keep = 0 if final else key.size % bs
        rest, use = perm[:keep], perm[keep:]
        chunks = width_buckets(use, key, chunk_sizes(use.size, bs, drop_last=final and self.drop_last), use.size)
        return [chunks[i] for i in rng.permutation(len(chunks))], rest

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots = worker_slot(self.rank, self.world_size)
        readers: list[ShardReader] = []
        shard_ids: list[int] = []
        remaining: list[int] = []
        pool_r = np.empty(0, np.int64)  # pool entry -> position in readers
        pool_row = np.empty(0, np.int64)  # pool entry -> row in that shard
        pool_key = np.empty(0, np.float64)  # pool entry -> aspect-scaled width (the bucketing key)
        seen: set[str] = set()
        first_fingerprint: str | None = None
        last_new = time.monotonic()

        def emit(batches: list[np.ndarray]) -> Iterator[dict[str, Any]]:
            for chunk in batches:
                rs, rows = pool_r[chunk], pool_row[chunk]
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
                # the manifest's fingerprint, or (none yet) the first shard's: every shard must share it
                fingerprint = (manifest or {}).get("fingerprint") or first_fingerprint
                check_identity(reader.identity, {"fingerprint": fingerprint}, name, k, 0, reader.path)
                if reader.identity is not None and first_fingerprint is None:
                    first_fingerprint = reader.identity["fingerprint"]
                readers.append(reader)
                shard_ids.append(k)
                remaining.append(len(reader))
                r = len(readers) - 1
                pool_r = np.concatenate([pool_r, np.full(len(reader), r, np.int64)])
                pool_row = np.concatenate([pool_row, np.arange(len(reader), dtype=np.int64)])
                pool_key = np.concatenate([pool_key, self.collator.aspect_widths(reader.widths, reader.heights)])
                rng = np.random.default_rng([self.seed, self.epoch, k])
                batches, rest = self._batches(pool_key, rng, final=False)
                yield from emit(batches)
                pool_r, pool_row, pool_key = pool_r[rest], pool_row[rest], pool_key[rest]
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
            batches, _ = self._batches(pool_key, rng, final=True)
            yield from emit(batches)
        for reader in readers:
            reader.close()
