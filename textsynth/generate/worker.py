"""The worker side: a ShardWorker is built once per worker process and renders whole shards."""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import ShardError
from ..procstats import rss_mb
from ..shards import storage
from ..shards.dataset import shard_name
from .plan import Plan

if TYPE_CHECKING:
    from ..synth.synthesizer import Pools


class ShardWorker:
    """Renders shards of one plan into `target` (the driver's resolved --out), stamped with `fingerprint`.

    Under Ray it is an actor (`dispatch.Workers`) whose constructor gets the pools' ObjectRef as a
    top-level argument, so Ray hands __init__ the Pools themselves, read from the node's object store
    (numpy buffers zero-copy); in one process (tests, benchmarks) it takes the Pools object directly.
    """

    def __init__(self, plan: Plan, pools: Pools, target: str, fingerprint: str | None = None):
        from ..synth.synthesizer import Synthesizer

        self.plan = plan
        self.target = target
        self.fingerprint = fingerprint
        self.synthesizer = Synthesizer(plan.cfg, pools)

    def ready(self) -> None:
        """Returns once the worker is built: the driver hands shards only to workers that are."""

    def render_shard(self, k: int) -> dict[str, Any]:
        """Render shard k atomically; returns {"entry": its manifest entry, "index": k, "stats": timings}."""
        from ..shards.writer import write_shard

        plan, syn = self.plan, self.synthesizer
        start, stop = plan.shard_range(k)
        path = storage.join(self.target, shard_name(k, plan.num_shards))
        identity = {"fingerprint": self.fingerprint, "index": k, "total": plan.num_shards} if self.fingerprint else None
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            info = write_shard(path, (syn.sample(i) for i in range(start, stop)), plan.encoding,
                               identity=identity).to_dict()
        except OSError as e:  # a full disk or a vanished mount: name the shard, keep nothing half-written
            raise ShardError(storage.redact(f"cannot write shard {path}: {e.strerror or e}")) from None
        stats = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "pid": os.getpid(),
                 "rss_mb": rss_mb(), **_node()}
        return {"entry": info, "index": k, "stats": stats}


def _node() -> dict[str, str]:
    """The Ray node this process runs on ({} outside Ray): the driver names it if a shard goes missing."""
    import ray

    if not ray.is_initialized():
        return {}
    return {"node": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}
