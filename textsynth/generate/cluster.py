"""The Ray cluster a run uses: join one or start a private local one; check every node sees --out."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import TextsynthError


def init_ray(address: str | None, num_cpus: int | None, temp_dir: str | None = None) -> bool:
    """Join `address` (or RAY_ADDRESS), else start a private local cluster. Returns True if we started Ray."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"log_to_driver": True, "logging_level": "WARNING"}
    if address:
        ray.init(address=address, **kwargs)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's default 15 loses every core to anything else
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 _temp_dir=temp_dir or os.environ.get("RAY_TMPDIR"), **kwargs)
    return True


@contextmanager
def ray_session(address: str | None, num_cpus: int | None, temp_dir: str | None = None) -> Iterator[None]:
    """Ray for the duration of the block (init_ray); shut down after it only if this block started it."""
    started = init_ray(address, num_cpus, temp_dir)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def probe_visible(root: str) -> None:
    """On a multi-node cluster, refuse a local --out that some node cannot see: the driver writes a probe
    file there and a task pinned to each alive node reads it back."""
    import secrets

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return
    token = secrets.token_hex(8)
    probe = os.path.join(root, f".textsynth-probe-{token}")
    with open(probe, "w") as fh:
        fh.write(token)
    try:
        read = ray.remote(num_cpus=0, max_retries=0)(_read_probe)
        refs = {n["NodeID"]: (n.get("NodeManagerAddress", "?"), read.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(probe))
            for n in nodes}
        blind = [f"{ip} ({nid[:12]})" for nid, (ip, ref) in refs.items() if ray.get(ref, timeout=120) != token]
    finally:
        os.unlink(probe)
    if blind:
        raise TextsynthError(f"--out {root} is a local folder that node(s) {', '.join(blind)} cannot see; on a "
                             "multi-node cluster give a folder every node mounts at the same path, or s3://...")


def _read_probe(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None
