"""Generate a dataset with Ray: resolve and lock --out, keep the shards already there, render the rest
on one worker per CPU, and record every landed shard in the manifest (atomically), so a rerun of the
same command writes only the shards it lacks. The bytes do not depend on how many workers or nodes
render them: shard k is a pure function of the plan and k (plan.py)."""
from __future__ import annotations

import time
from importlib import metadata

from ..fingerprint import dataset_fingerprint, identity_parts
from ..shards import storage
from ..shards.dataset import build_manifest, write_dataset_metadata, write_manifest_atomic
from ..shards.lock import DatasetLock
from .cluster import probe_visible, ray_session
from .dispatch import Workers
from .output import check_landed, make_dir, resolve_out
from .plan import Plan
from .report import Report, progress_bar
from .survey import delete, remove_stale_temps, survey


def generate(plan: Plan, *, address: str | None = None, num_cpus: int | None = None, overwrite: bool = False,
             progress: bool = True, ray_temp_dir: str | None = None) -> tuple[dict, Report]:
    """Run (or resume) a generate job; returns the final manifest and a report of this run.

    Nothing is written or removed before the recipe and every asset have loaded, the folder is locked
    and surveyed (foreign content refused), and every node of the cluster sees it.
    """
    from ..synth.synthesizer import Pools

    fs, root, target = resolve_out(plan.out)
    pools = Pools.from_config(plan.cfg)  # the background pool is an index: it travels, its pixels do not
    parts = identity_parts(plan.cfg, plan.count, plan.shard_size, plan.encoding, backgrounds=pools.backgrounds)
    fingerprint = dataset_fingerprint(parts)
    about = {**plan.identity(), "versions": versions(), "num_shards": plan.num_shards, "fingerprint": fingerprint,
             "shard_format": parts["shard_format"], "assets": parts["assets"],
             "backgrounds": pools.backgrounds.fingerprint()}
    make_dir(fs, root, plan.out)
    with DatasetLock(fs, root) as lock:
        found = survey(plan, fs, root, fingerprint, parts, overwrite)
        landed = found.landed
        report = Report(skipped=sorted(landed))
        t0 = time.perf_counter()
        todo = [k for k in range(plan.num_shards) if k not in landed]
        if todo:
            with ray_session(address, num_cpus, ray_temp_dir):
                if storage.is_local(fs):
                    probe_visible(root)
                delete(fs, root, found.doomed)
                remove_stale_temps(fs, root)
                done = sum(e["rows"] for e in landed.values())
                with (Workers(plan, pools, target, fingerprint, len(todo)) as workers,
                      progress_bar(progress, plan.count, done) as advance):
                    del pools  # the object store holds them now
                    for result in workers.render(todo):
                        check_landed(fs, root, result["entry"], result["stats"])
                        landed[result["index"]] = result["entry"]
                        report.add(result)
                        write_manifest_atomic(fs, root, build_manifest(
                            plan.encoding, [landed[k] for k in sorted(landed)], complete=False, **about))
                        lock.refresh()
                        advance(result["entry"]["rows"])
        else:
            remove_stale_temps(fs, root)
        manifest = write_dataset_metadata(fs, root, plan.encoding, [landed[k] for k in range(plan.num_shards)],
                                          complete=True, **about)
    report.wall_s = time.perf_counter() - t0
    return manifest, report


def versions() -> dict[str, str]:
    """The installed versions of what a dataset's bytes depend on, recorded in its manifest."""
    out = {}
    for pkg in ("textsynth", "numpy", "pillow", "opencv-python-headless", "pyarrow", "ray"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
