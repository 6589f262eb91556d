"""Online dataset: renders samples from a recipe inside the workers (no disk), in the same batch format."""
from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import numpy as np
from torch.utils.data import IterableDataset

from textsynth.loading.collate import BatchCollator, CollateOptions
from textsynth.loading.sampler import chunk_sizes, width_buckets
from textsynth.loading.workers import worker_slot
from textsynth.sample import IMAGE_KEYS


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

    def __init__(self, config: Any = "smoke", batch_size: int = 64, keys: Sequence[str] = IMAGE_KEYS,
                 options: CollateOptions = CollateOptions(), *, num_samples: int | None = None, start: int = 0,
                 seed: int | None = None, rank: int = 0, world_size: int = 1, bucket_batches: int = 4,
                 drop_last: bool = False, epoch: int = 0, ring_slots: int = 8) -> None:
        from textsynth import recipes
        from textsynth.config import SynthConfig
        from textsynth.synth.synthesizer import Pools

        if isinstance(config, SynthConfig):
            cfg = config if seed is None else config.replace(seed=seed)
        elif isinstance(config, str) and (config.endswith(".toml") or config.endswith(".json") or os.sep in config):
            cfg = recipes.load(config, None, seed)
        else:
            cfg = recipes.load(None, config, seed)
        self.config = cfg
        # built once here, then inherited (fork) or pickled (spawn) by the workers: the background index
        # and font checks are not repeated per worker, and a bad pool fails before any worker starts
        self.pools = Pools.from_config(cfg)
        self.collator = BatchCollator(keys, options, ring_slots)
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
        state["_synth"] = None  # rebuilt in each worker around the shipped pools
        return state

    def _indices(self, slot: int, slots: int) -> Iterator[int]:
        first = self.start + (self.epoch * self.num_samples if self.num_samples is not None else 0)
        i = first + slot
        stop = None if self.num_samples is None else first + self.num_samples
        while stop is None or i < stop:
            yield i
            i += slots

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from textsynth.synth.synthesizer import Synthesizer

        if self._synth is None:
            self._synth = Synthesizer(self.config, self.pools)
        slot, slots = worker_slot(self.rank, self.world_size)
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
        """The render buffer as width-bucketed batches, narrowest first (one window, render order kept on ties)."""
        shapes = np.array([s.images["i_s"].shape[:2] for s in buf], np.int64)
        key = self.collator.aspect_widths(shapes[:, 1], shapes[:, 0])
        sizes = chunk_sizes(len(buf), self.batch_size, self.drop_last)
        for chunk in width_buckets(np.arange(len(buf)), key, sizes, len(buf)):
            samples = [buf[int(j)] for j in chunk]
            yield self.collator.collate_samples(samples, index=[s.meta["index"] for s in samples])
