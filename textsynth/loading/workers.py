"""DataLoader process plumbing: worker init, ranks and worker slots, the DataLoader options every mode shares."""
from __future__ import annotations

from typing import Any, Callable

import cv2
import torch
from torch.utils.data import get_worker_info


def in_worker() -> bool:
    """Whether this code runs inside a DataLoader worker process."""
    return get_worker_info() is not None


def worker_init(worker_id: int | None = None) -> None:
    """DataLoader worker_init_fn: one thread for OpenCV and torch (parallelism comes from processes)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class ChainInit:
    """worker_init then the user's worker_init_fn (a class, so it pickles for spawn/forkserver)."""

    def __init__(self, user: Callable[[int], Any] | None) -> None:
        self.user = user

    def __call__(self, worker_id: int) -> None:
        worker_init(worker_id)
        if self.user is not None:
            self.user(worker_id)


def identity_collate(batch: Any) -> Any:
    """collate_fn of every mode: datasets already return whole collated batches."""
    return batch


def rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): the given values, else torch.distributed's when initialised, else (0, 1)."""
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


def worker_slot(rank: int, world_size: int) -> tuple[int, int]:
    """(slot, slots): this worker's position among all workers of all ranks (rank * workers + worker id)."""
    info = get_worker_info()
    wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * nw + wid, world_size * nw


def dataloader_options(num_workers: int, pin_memory: bool | str, persistent_workers: bool | None,
                       prefetch_factor: int | None, worker_init_fn: Callable[[int], Any] | None,
                       multiprocessing_context: Any, timeout: float) -> dict[str, Any]:
    """DataLoader keyword arguments: pin_memory="auto" pins when CUDA is available; workers persist by default."""
    if pin_memory == "auto":
        pin_memory = torch.cuda.is_available()
    kw: dict[str, Any] = {"num_workers": num_workers, "pin_memory": bool(pin_memory),
                          "collate_fn": identity_collate, "worker_init_fn": ChainInit(worker_init_fn)}
    if num_workers > 0:
        kw["persistent_workers"] = True if persistent_workers is None else persistent_workers
        kw["prefetch_factor"] = prefetch_factor or 4
        kw["multiprocessing_context"] = multiprocessing_context
        kw["timeout"] = timeout
    return kw


def ring_slots(options: dict[str, Any]) -> int:
    """Reusable shared batch buffers per worker for these DataLoader options: prefetched batches + 2."""
    return (options.get("prefetch_factor") or 2) + 2
