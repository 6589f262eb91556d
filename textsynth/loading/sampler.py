"""Width bucketing (one function for every mode) and the map-style batch sampler built on it."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from textsynth.loading.workers import rank_world


def width_buckets(order: np.ndarray, key: np.ndarray, sizes: Sequence[int], window: int) -> list[np.ndarray]:
    """Cut `order` (item ids, usually shuffled) into consecutive batches of `sizes`, after sorting each
    window of `window` consecutive items by key[item] (stable), so a batch holds items of similar width.

    Every mode buckets with this: the map-style sampler (a global permutation, windows of
    bucket_batches * batch_size), streaming (a shard's pool, one window) and online (a render buffer).
    Items beyond sum(sizes) are left out (a dropped last batch).
    """
    order = np.asarray(order, np.int64).copy()
    for s in range(0, order.size, max(1, window)):
        part = order[s:s + window]
        order[s:s + window] = part[np.argsort(key[part], kind="stable")]
    bounds = np.cumsum(np.asarray(sizes, np.int64))
    return np.split(order, bounds)[:bounds.size]


def chunk_sizes(n: int, batch_size: int, drop_last: bool = False) -> list[int]:
    """Sizes of consecutive batches of `batch_size` over n items: the last smaller unless drop_last."""
    sizes = [batch_size] * (n // batch_size)
    if n % batch_size and not drop_last:
        sizes.append(n % batch_size)
    return sizes


def tail_sizes(n: int, batch_size: int, world: int) -> np.ndarray:
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
        self.rank, self.world_size = rank_world(rank, world_size)
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
            tail_sizes(self.n, self.batch_size, self.world_size)  # fail now, not at iteration

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
            sizes = tail_sizes(self.n, bs, world)
        batches = width_buckets(perm, self.key, sizes, self.bucket_batches * bs)
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
