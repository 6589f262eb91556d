"""Worker -> main batch transport: a per-worker ring of reusable slots in one shared-memory segment.

A fresh shared-memory segment per batch costs ~2.5 us per 4 KiB page (the kernel allocates and zeroes
every page: ~8 ms for a 12 MB batch, more than decoding it), so each worker writes batches into a ring
of reusable slots inside ONE shared segment. A slot's flag (in the segment's header) is 1 while the
main process holds any tensor of that batch: the main process rebuilds the batch as views of its own
mapping of the ring and a finalizer clears the flag when the last view dies (after pin_memory's copy,
or when the training step drops the batch). A worker that finds no free slot (a consumer keeping many
batches alive) falls back to a fresh segment, so nothing ever waits or is overwritten. The batch
pickles as (ring, slot, layout): one file descriptor per batch.
"""
from __future__ import annotations

import os
import secrets
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from textsynth.loading.workers import in_worker

RING_HEADER = 64  # bytes of slot flags; at most this many slots
_MAIN_RINGS_KEPT = 32


def alloc(nbytes: int, shared: bool) -> torch.Tensor:
    """A flat uint8 tensor; shared=True backs it by a fresh shared-memory segment (the slow path)."""
    if shared:
        storage_ = torch.UntypedStorage._new_shared(max(nbytes, 1))
        return torch.empty(0, dtype=torch.uint8).set_(storage_, 0, (nbytes,))
    return torch.empty(nbytes, dtype=torch.uint8)


class _Ring:
    def __init__(self, slots: int, slot_bytes: int) -> None:
        self.slots = slots
        self.slot_bytes = slot_bytes
        total = RING_HEADER + slots * slot_bytes
        self.tensor = alloc(total, shared=True)  # pages materialise on first write only
        self.np = self.tensor.numpy()
        self.np[:RING_HEADER] = 0
        self.token = f"{os.getpid()}-{secrets.token_hex(8)}"

    def acquire(self) -> int | None:
        free = np.flatnonzero(self.np[:self.slots] == 0)
        if free.size == 0:
            return None
        slot = int(free[0])
        self.np[slot] = 1
        return slot

    def offset(self, slot: int) -> int:
        return RING_HEADER + slot * self.slot_bytes


_worker_ring: _Ring | None = None
_main_rings: OrderedDict[str, np.ndarray] = OrderedDict()


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


def batch_buffer(nbytes: int, slots: int, hint: int = 0) -> tuple[torch.Tensor, Any]:
    """(flat uint8 tensor of nbytes, where): in a worker a ring slot (where = (ring, slot, offset, nbytes)),
    or a fresh shared segment when the ring is full or off (slots=0); in the main process plain memory."""
    if in_worker() and slots > 0:
        got = _ring_slot(nbytes, slots, hint)
        if got is not None:
            ring, slot = got
            off = ring.offset(slot)
            return ring.tensor[off: off + nbytes], (ring, slot, off, nbytes)
        return alloc(nbytes, shared=True), None
    return alloc(nbytes, shared=in_worker()), None


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


class RingBatch(dict):
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

    def __copy__(self) -> "RingBatch":
        clone = RingBatch(self)
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


def package(tensors: dict[str, torch.Tensor], extras: dict[str, Any], arrays: dict[str, np.ndarray],
            where: Any) -> dict[str, Any]:
    """The batch dict: plain when its images are not in a ring slot, else a RingBatch that travels by slot.

    `arrays` are the numpy originals of the small metadata tensors in `extras` (they pickle by value)."""
    if where is None:
        return {**tensors, **extras}
    ring, slot, off, nbytes = where
    batch = RingBatch(tensors)
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
