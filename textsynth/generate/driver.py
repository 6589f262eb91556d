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
import re
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

from ..config import SynthConfig
from ..errors import ShardError, ShardSchemaError, TextsynthError
from ..fingerprint import PARTS, dataset_fingerprint, differences, identity_parts
from ..procstats import rss_mb
from ..shards import storage
from ..shards.dataset import (DATASET_INFO_NAME, MANIFEST_NAME, STATE_NAME, build_manifest, read_manifest,
                             sha256_of, shard_name, write_dataset_metadata, write_manifest_atomic)
from ..shards.encodings import check_encoding
from ..shards.lock import LOCK_NAME, DatasetLock
from ..shards.reader import ShardReader
from ..shards.schema import parse_identity

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
    from ..config import from_dict
    from ..synth.synthesizer import Synthesizer

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
                 encoding: str, fingerprint: str | None = None) -> dict[str, Any]:
    """Render samples [start, stop) into shard k of `out` (absolute path or URI, resolved by the driver),
    atomically, stamped with the dataset fingerprint and k; returns its manifest entry plus stats."""
    from ..shards.writer import write_shard

    syn = _synthesizer(cfg_dict, pools_box)
    path = storage.join(out, shard_name(k, n_shards))
    identity = {"fingerprint": fingerprint, "index": k, "total": n_shards} if fingerprint else None
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        info = write_shard(path, (syn.sample(i) for i in range(start, stop)), encoding, identity=identity).to_dict()
    except OSError as e:  # a full disk or a vanished mount: name the shard, keep nothing half-written
        raise ShardError(storage.redact(f"cannot write shard {path}: {e.strerror or e}")) from None
    stats = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "pid": os.getpid(),
             "rss_mb": rss_mb()}
    try:
        import ray

        if ray.is_initialized():
            stats["node"] = ray.get_runtime_context().get_node_id()
            stats["node_ip"] = ray.util.get_node_ip_address()
    except ImportError:  # pragma: no cover - ray is a core dependency
        pass
    return {"entry": info, "index": k, "stats": stats}


# --- resume ---------------------------------------------------------------------------------------

_OWN_TEMP_RE = re.compile(r"^(\.(data-\d{5,}-of-\d{5,}\.arrow|textsynth\.json|state\.json|dataset_info\.json)"
                          r"\.tmp-[0-9A-Za-z]+|\.textsynth-probe-[0-9a-f]+)$")


def is_own_temp(name: str) -> bool:
    """True for the hidden temp names textsynth itself writes into a dataset folder."""
    return bool(_OWN_TEMP_RE.match(name))


def shard_identity(fs, path: str) -> dict | None:
    """The b"textsynth.shard" identity in a shard's Arrow schema (None if absent or unreadable)."""
    import pyarrow as pa

    try:
        with fs.open_input_stream(path) as f:
            schema = pa.ipc.open_stream(f).schema
        return parse_identity(schema, path)
    except (OSError, pa.ArrowInvalid, ShardSchemaError):
        return None


@dataclass
class Survey:
    """What an output folder holds for this plan: shards to keep, files an --overwrite removes."""

    landed: dict[int, dict] = field(default_factory=dict)
    doomed: list[str] = field(default_factory=list)


def survey(plan: Plan, fs, root: str, fingerprint: str, parts: dict, overwrite: bool) -> Survey:
    """Decide, touching nothing, which shards of `root` this run keeps and what --overwrite would remove.

    A folder with a manifest of another fingerprint is refused (naming what differs) unless --overwrite;
    a non-empty folder that is not a textsynth dataset is always refused; a shard is adopted only if
    its schema names this fingerprint and its index.
    """
    import pyarrow.fs as pafs

    where = storage.redact(plan.out)
    names = {shard_name(k, plan.num_shards): k for k in range(plan.num_shards)}
    listing = {i.base_name: i.size for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
               if i.type == pafs.FileType.File}
    out = Survey()
    manifest = read_manifest(fs, root) if MANIFEST_NAME in listing else None
    listed: set[str] = set()
    if manifest is not None:
        listed = {e["file"] for e in manifest["shards"]}
        if manifest.get("fingerprint") != fingerprint:
            if not overwrite:
                old = {k: manifest.get(k) for k in PARTS}
                raise TextsynthError(f"{where} holds a dataset made with a different "
                                     f"{'; '.join(differences(old, parts))}; "
                                     "use another --out, or --overwrite to replace it")
            out.doomed = sorted(n for n in listing if n in listed or is_own_temp(n)
                                or n in (MANIFEST_NAME, DATASET_INFO_NAME, STATE_NAME))
            return out
    foreign: list[str] = []
    for name, size in sorted(listing.items()):
        if name == LOCK_NAME or is_own_temp(name):
            continue
        if manifest is not None and name in (MANIFEST_NAME, DATASET_INFO_NAME, STATE_NAME):
            continue
        k = names.get(name)
        if k is None:
            if manifest is None:
                foreign.append(name)  # a user's file (or a shard of another layout) in a non-dataset folder
            continue
        ident = shard_identity(fs, storage.join(root, name))
        at = storage.redact(storage.join(plan.out, name))
        if ident is None:
            if manifest is None:
                foreign.append(name)
            elif not overwrite:
                raise TextsynthError(f"{at} carries no textsynth shard identity (not written by this "
                                     "textsynth, or corrupt); --overwrite renders it again")
            continue
        if ident != {"fingerprint": fingerprint, "index": k, "total": plan.num_shards}:
            if overwrite:
                continue  # rendered again: the rename replaces it
            if ident.get("fingerprint") != fingerprint:
                what = f"fingerprint {str(ident.get('fingerprint'))[:12]}, this run's {fingerprint[:12]}"
                raise TextsynthError(f"{at} was written by a run with another recipe, seed or assets "
                                     f"({what}); use another --out, or --overwrite to render it again")
            raise TextsynthError(f"{at} holds shard {ident.get('index')} of {ident.get('total')}, "
                                 f"not {k} of {plan.num_shards} (files swapped?); --overwrite renders it again")
        start, stop = plan.shard_range(k)
        entry = next((e for e in manifest["shards"] if e["file"] == name), None) if manifest else None
        if entry is not None and entry["bytes"] == size and entry["rows"] == stop - start:
            out.landed[k] = entry
            continue
        # landed after the driver's last manifest write (killed in between): adopt it if it reads back whole
        try:
            reader = ShardReader(storage.join(root, name), fs)
            rows = len(reader)
            reader.close()
        except ShardError:
            continue  # corrupt: rendered again (the atomic rename replaces it)
        if rows == stop - start:
            out.landed[k] = {"file": name, "rows": rows, "bytes": size, "sha256": sha256_of(fs, storage.join(root, name))}
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TextsynthError(f"{where} is not empty and is not a textsynth dataset (it holds {shown}); "
                             "give an empty or new folder")
    return out


def _delete(fs, root: str, names: list[str]) -> None:
    for name in names:
        try:
            fs.delete_file(storage.join(root, name))
        except FileNotFoundError:
            pass


def _remove_stale_temps(fs, root: str) -> None:
    """Temp files of shards whose writer died; only called while this run holds the dataset lock."""
    import pyarrow.fs as pafs

    _delete(fs, root, [i.base_name for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
                       if i.type == pafs.FileType.File and is_own_temp(i.base_name)])


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
                "worker_rss_mb": rss, "driver_rss_mb": round(rss_mb() or 0.0, 1),
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


def resolve_out(out: str) -> tuple[Any, str, str]:
    """(filesystem, root, target) for --out, resolved once on the driver: `target` is what workers write to
    (an absolute local path, or the URI); refuses an empty value or a path that is a file."""
    if not isinstance(out, str) or not out.strip():
        raise TextsynthError("--out is empty: give a dataset folder or an s3:// URI")
    try:
        fs, root = storage.locate(out)
    except ValueError as e:
        raise TextsynthError(storage.redact(str(e))) from None
    if storage.is_local(fs):
        if os.path.exists(root) and not os.path.isdir(root):
            raise TextsynthError(f"--out {root} is a file, not a folder")
        return fs, root, root
    return fs, root, out


def _make_dir(fs, root: str, where: str) -> None:
    try:
        storage.ensure_dir(fs, root)
    except OSError as e:
        raise TextsynthError(f"cannot create {where}: {getattr(e, 'strerror', None) or e}") from None
    if storage.is_local(fs) and not os.access(root, os.W_OK | os.X_OK):
        raise TextsynthError(f"cannot write to {where}: permission denied")


def _probe_visible(root: str) -> None:
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


def check_landed(fs, root: str, entry: dict, stats: dict) -> None:
    """The driver sees the shard a task reports, with the size and sha256 the task wrote."""
    path = storage.join(root, entry["file"])
    size = storage.file_size(fs, path)
    digest = sha256_of(fs, path) if size == entry["bytes"] else None
    if digest != entry["sha256"]:
        seen = "missing" if size is None else f"{size} bytes" + (", other sha256" if size == entry["bytes"] else "")
        raise TextsynthError(storage.redact(
            f"shard {entry['file']} written by node {stats.get('node_ip', '?')} ({str(stats.get('node', '?'))[:12]}) "
            f"is not what the driver sees at {path} ({seen}; expected {entry['bytes']} bytes): "
            "the nodes do not share this output folder"))


def task_error(e: BaseException, what: str) -> TextsynthError:
    """A Ray task failure as one TextsynthError: the task's own exception, without Ray's traceback."""
    cause = getattr(e, "cause", None)
    if cause is None and hasattr(e, "as_instanceof_cause"):
        cause = e.as_instanceof_cause()
    cause = cause if cause is not None else e
    if isinstance(cause, TextsynthError):
        return TextsynthError(storage.redact(str(cause)))
    msg = str(cause).strip().splitlines()
    return TextsynthError(storage.redact(f"{what} failed: {type(cause).__name__}: {msg[0] if msg else ''}"))


def generate(plan: Plan, *, address: str | None = None, num_cpus: int | None = None, overwrite: bool = False,
             max_in_flight: int | None = None, progress: bool = True, ray_temp_dir: str | None = None,
             on_shard: Callable[[dict], None] | None = None) -> tuple[dict, Report]:
    """Run (or resume) a generate job; returns the final manifest and a report of this run.

    Order: resolve --out, load the pools (the recipe and every asset), fingerprint, create and lock
    the folder, survey it (refusing foreign content), start Ray and check node visibility; only then
    remove what --overwrite replaces and render.
    """
    import ray

    from ..synth.synthesizer import Pools

    fs, root, target = resolve_out(plan.out)
    where = storage.redact(plan.out)
    pools = Pools.from_config(plan.cfg)  # the background pool is an index: it travels, its pixels do not
    parts = identity_parts(plan.cfg, plan.count, plan.shard_size, plan.encoding, backgrounds=pools.backgrounds)
    fingerprint = dataset_fingerprint(parts)
    _make_dir(fs, root, where)
    with DatasetLock(fs, root) as lock:
        found = survey(plan, fs, root, fingerprint, parts, overwrite)
        landed = found.landed
        report = Report(skipped=sorted(landed))
        t0 = time.perf_counter()
        todo = [k for k in range(plan.num_shards) if k not in landed]
        extra = {**plan.identity(), "versions": _versions(), "num_shards": plan.num_shards,
                 "fingerprint": fingerprint, "shard_format": parts["shard_format"], "assets": parts["assets"],
                 "backgrounds": pools.backgrounds.fingerprint()}
        if todo:
            started = init_ray(address, num_cpus, ray_temp_dir)
            try:
                if storage.is_local(fs):
                    _probe_visible(root)
                _delete(fs, root, found.doomed)
                _remove_stale_temps(fs, root)
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
                            ref = task.remote(cfg_dict, [pools_ref], target, k, plan.num_shards, start, stop,
                                              plan.encoding, fingerprint)
                            pending[ref] = k
                        done, _ = ray.wait(list(pending), num_returns=1)
                        for ref in done:
                            k = pending.pop(ref)
                            try:
                                result = ray.get(ref)
                            except (ray.exceptions.RayError, OSError) as e:
                                for r in pending:
                                    ray.cancel(r)
                                raise task_error(e, f"shard {shard_name(k, plan.num_shards)}") from e
                            check_landed(fs, root, result["entry"], result["stats"])
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
                            lock.refresh()
                            bar(result["entry"]["rows"])
                            if on_shard:
                                on_shard(result)
            finally:
                if started:
                    ray.shutdown()
        else:
            _remove_stale_temps(fs, root)
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
