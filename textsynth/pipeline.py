"""Generate a dataset with Ray: one task per shard, bounded in flight, atomic shards, resumable.

Shard k holds samples [k*shard_size, min(count, (k+1)*shard_size)) of the recipe, each a pure
function of (config, seed, index), so the dataset is byte-identical however many workers or nodes
render it. The manifest is rewritten (atomically) as shards land; a rerun of the same command
writes only the shards it lacks. The pools travel once, through Ray's object store; background
photos travel as an index (path, size, sha256) that workers read lazily through a bounded cache.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

from .config import SynthConfig
from .errors import ShardError, TextsynthError
from .shards import storage
from .shards.dataset import (MANIFEST_NAME, build_manifest, read_manifest, sha256_of, shard_name,
                             write_dataset_metadata, write_manifest_atomic)
from .shards.encodings import check_encoding
from .shards.reader import ShardReader

DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class Plan:
    """What a generate run produces; its identity (all but `out`) must match an existing folder's."""

    out: str
    count: int
    cfg: SynthConfig
    shard_size: int = DEFAULT_SHARD_SIZE
    encoding: str = "lz4"

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        check_encoding(self.encoding)

    @property
    def num_shards(self) -> int:
        return math.ceil(self.count / self.shard_size)

    def shard_range(self, k: int) -> tuple[int, int]:
        return k * self.shard_size, min(self.count, (k + 1) * self.shard_size)

    def identity(self) -> dict[str, Any]:
        return {"count": self.count, "seed": self.cfg.seed, "shard_size": self.shard_size,
                "config": self.cfg.to_dict()}


# --- the per-shard task (runs in a Ray worker, or in-process) ------------------------------------

_WORKER_SYNTH: dict[str, Any] = {}


def _synthesizer(cfg_dict: dict, pools_box: list) -> Any:
    """One Synthesizer per worker process and recipe; the pools come from the object store once."""
    from .config import from_dict
    from .synth import Synthesizer

    key = json.dumps(cfg_dict, sort_keys=True)
    syn = _WORKER_SYNTH.get(key)
    if syn is None:
        pools = pools_box[0]
        if not hasattr(pools, "fonts"):  # an ObjectRef: fetch it (zero-copy for the numpy images)
            import ray

            pools = ray.get(pools)
        _WORKER_SYNTH.clear()
        syn = _WORKER_SYNTH[key] = Synthesizer(from_dict(cfg_dict), pools)
    return syn


def render_shard(cfg_dict: dict, pools_box: list, out: str, k: int, n_shards: int, start: int, stop: int,
                 encoding: str) -> dict[str, Any]:
    """Render samples [start, stop) into shard k, atomically; returns its manifest entry plus stats."""
    from .shards.writer import write_shard

    syn = _synthesizer(cfg_dict, pools_box)
    path = storage.join(out, shard_name(k, n_shards))
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        info = write_shard(path, (syn.sample(i) for i in range(start, stop)), encoding).to_dict()
    except OSError as e:  # a full disk or a vanished mount: name the shard, keep nothing half-written
        raise ShardError(f"cannot write shard {path}: {e.strerror or e}") from e
    stats = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "pid": os.getpid(),
             "rss_mb": _rss_mb()}
    try:
        import ray

        if ray.is_initialized():
            stats["node"] = ray.get_runtime_context().get_node_id()
    except ImportError:  # pragma: no cover - ray is a core dependency
        pass
    return {"entry": info, "index": k, "stats": stats}


def _rss_mb() -> float | None:
    """This process's resident memory, MiB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


# --- resume --------------------------------------------------------------------------------------

def _existing(plan: Plan, fs, root: str, overwrite: bool) -> dict[int, dict]:
    """Shards already complete in `out` (by manifest, or landed after the driver's last manifest write)."""
    names = {shard_name(k, plan.num_shards): k for k in range(plan.num_shards)}
    manifest_path = storage.join(root, MANIFEST_NAME)
    have_manifest = storage.file_size(fs, manifest_path) is not None
    landed: dict[int, dict] = {}
    if have_manifest:
        manifest = read_manifest(fs, root)
        mine = plan.identity()
        theirs = {k: manifest.get(k) for k in mine}
        if theirs != mine or manifest.get("encoding") != plan.encoding:
            if not overwrite:
                diff = [k for k in mine if theirs.get(k) != mine[k]] + (
                    ["encoding"] if manifest.get("encoding") != plan.encoding else [])
                raise TextsynthError(
                    f"{plan.out} holds a dataset made with a different {', '.join(diff)}; "
                    "use another --out, or --overwrite to replace it")
            _wipe(fs, root)
            return {}
        for e in manifest["shards"]:
            k = names.get(e["file"])
            if k is not None and storage.file_size(fs, storage.join(root, e["file"])) == e["bytes"]:
                landed[k] = e
    elif overwrite:
        _wipe(fs, root)
        return {}
    # shards renamed into place after the last manifest write (driver killed in between): adopt
    # them if they read back whole; the content is deterministic, so they equal a fresh render
    for name, k in names.items():
        if k in landed:
            continue
        path = storage.join(root, name)
        if storage.file_size(fs, path) is None:
            continue
        try:
            reader = ShardReader(path, fs)
            rows = len(reader)
            reader.close()
        except ShardError:
            continue  # incomplete or corrupt: rendered again (the atomic rename replaces it)
        start, stop = plan.shard_range(k)
        if rows == stop - start:
            landed[k] = {"file": name, "rows": rows, "bytes": storage.file_size(fs, path),
                         "sha256": sha256_of(fs, path)}
    return landed


def _delete_files(fs, root: str, doomed: Callable[[str], bool]) -> None:
    import pyarrow.fs as pafs

    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if info.type == pafs.FileType.File and doomed(info.base_name):
            fs.delete_file(info.path)


def _wipe(fs, root: str) -> None:
    """Everything a dataset folder holds (for --overwrite); other files stay."""
    _delete_files(fs, root, lambda name: name.startswith(("data-", ".data-")) or name in (
        MANIFEST_NAME, "dataset_info.json", "state.json"))


def _remove_stale_temps(fs, root: str) -> None:
    """Temp files of shards whose writer died (a killed worker or driver); one generate per folder."""
    _delete_files(fs, root, lambda name: name.startswith(".data-") and ".tmp-" in name)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("textsynth", "numpy", "pillow", "opencv-python-headless", "pyarrow", "ray"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


# --- the driver ----------------------------------------------------------------------------------

@dataclass
class Report:
    """What a run did: shards written now, shards found done, per-node counts, timings."""

    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    nodes: dict[str, int] = field(default_factory=dict)
    worker_rss_mb: dict[int, list[float]] = field(default_factory=dict)  # pid -> RSS after each shard
    wall_s: float = 0.0
    task_cpu_s: float = 0.0
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        rss = {str(pid): {"first": round(v[0], 1), "last": round(v[-1], 1), "shards": len(v)}
               for pid, v in self.worker_rss_mb.items() if v}
        return {"written": sorted(self.written), "skipped": sorted(self.skipped), "nodes": self.nodes,
                "worker_rss_mb": rss, "driver_rss_mb": round(_rss_mb() or 0.0, 1),
                "wall_s": round(self.wall_s, 3), "task_cpu_s": round(self.task_cpu_s, 3), "samples": self.samples,
                "samples_per_s": round(self.samples / self.wall_s, 1) if self.wall_s else None}


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


def generate(plan: Plan, *, address: str | None = None, num_cpus: int | None = None, overwrite: bool = False,
             max_in_flight: int | None = None, progress: bool = True, ray_temp_dir: str | None = None,
             on_shard: Callable[[dict], None] | None = None) -> tuple[dict, Report]:
    """Run (or resume) a generate job; returns the final manifest and a report of this run."""
    import ray

    from .synth import Pools

    fs, root = storage.resolve(plan.out)
    storage.ensure_dir(fs, root)
    landed = _existing(plan, fs, root, overwrite)
    _remove_stale_temps(fs, root)
    report = Report(skipped=sorted(landed))
    t0 = time.perf_counter()
    todo = [k for k in range(plan.num_shards) if k not in landed]
    pools = Pools.from_config(plan.cfg)  # the background pool is an index: it travels, its pixels do not
    extra = {**plan.identity(), "versions": _versions(), "num_shards": plan.num_shards,
             "backgrounds": pools.backgrounds.fingerprint()}
    if todo:
        started = init_ray(address, num_cpus, ray_temp_dir)
        try:
            pools_ref = ray.put(pools)
            del pools
            task = ray.remote(max_retries=4)(render_shard)
            limit = max_in_flight or max(2, int(ray.cluster_resources().get("CPU", 1)) * 2)
            cfg_dict = plan.cfg.to_dict()
            pending: dict[Any, int] = {}
            queue = list(todo)
            with _progress(progress, plan, landed) as bar:
                while queue or pending:
                    while queue and len(pending) < limit:
                        k = queue.pop(0)
                        start, stop = plan.shard_range(k)
                        ref = task.remote(cfg_dict, [pools_ref], plan.out, k, plan.num_shards, start, stop,
                                          plan.encoding)
                        pending[ref] = k
                    done, _ = ray.wait(list(pending), num_returns=1)
                    for ref in done:
                        k = pending.pop(ref)
                        try:
                            result = ray.get(ref)
                        except ray.exceptions.RayTaskError as e:
                            for r in pending:
                                ray.cancel(r)
                            cause = e.as_instanceof_cause()
                            if isinstance(cause, TextsynthError):
                                raise cause from None
                            raise TextsynthError(f"shard {k} failed: {cause}") from None
                        landed[k] = result["entry"]
                        report.written.append(k)
                        node = result["stats"].get("node", "local")
                        report.nodes[node] = report.nodes.get(node, 0) + 1
                        report.task_cpu_s += result["stats"]["cpu_s"]
                        if result["stats"].get("rss_mb") is not None:
                            report.worker_rss_mb.setdefault(result["stats"]["pid"], []).append(
                                result["stats"]["rss_mb"])
                        report.samples += result["entry"]["rows"]
                        write_manifest_atomic(fs, root, build_manifest(
                            plan.encoding, [landed[i] for i in sorted(landed)], complete=False, **extra))
                        bar(result["entry"]["rows"])
                        if on_shard:
                            on_shard(result)
        finally:
            if started:
                ray.shutdown()
    manifest = write_dataset_metadata(fs, root, plan.encoding, [landed[k] for k in range(plan.num_shards)],
                                      complete=True, **extra)
    report.wall_s = time.perf_counter() - t0
    return manifest, report


class _progress:
    """A rich progress bar (samples, samples/s, ETA) on the driver, or nothing."""

    def __init__(self, enabled: bool, plan: Plan, landed: dict[int, dict]):
        self.enabled = enabled
        self.total = plan.count
        self.done = sum(e["rows"] for e in landed.values())

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.p = Progress(TextColumn("generate"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[rate]}"),
                          TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self.p.__enter__()
        self.t0 = time.perf_counter()
        self.start_done = self.done
        self.task = self.p.add_task("generate", total=self.total, completed=self.done, rate="")

        def advance(n: int) -> None:
            self.done += n
            rate = (self.done - self.start_done) / max(time.perf_counter() - self.t0, 1e-9)
            self.p.update(self.task, completed=self.done, rate=f"{rate:,.0f} samples/s")

        return advance

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False
