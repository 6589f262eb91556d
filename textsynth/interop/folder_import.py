"""`textsynth import`: an SRNet-Datagen style folder into a dataset (local folder or object storage).

The folder is scanned first (every sample in every image folder, complete label files), then one
task per shard streams its samples (decoded one at a time, encoded in batches) into a staging
prefix `ROOT/.textsynth-import/` on the same filesystem, in a process pool. Each finished shard
leaves a done-marker there, so a rerun resumes. Only when every shard is staged is the dataset
committed: the old manifest goes first, then the old dataset's listed files, the new shards move
in and the new manifest (the completion marker) is written last. ROOT must be empty or hold a
textsynth dataset, and an existing dataset is replaced only with `overwrite`.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from typing import Any

import pyarrow.fs as pafs

from textsynth import atomic
from textsynth.errors import SrnetFolderError
from textsynth.parallel import Progress, default_workers, run_tasks
from textsynth.shards import storage
from textsynth.shards.dataset import (DATASET_INFO_NAME, MANIFEST_NAME, STATE_NAME, read_manifest, shard_name,
                                      write_dataset_metadata)
from textsynth.shards.writer import write_shard
from textsynth.interop.srnet_folder import FolderTree, SrnetFolder, scan_folder

STAGING = ".textsynth-import"
_JOB, _DONE = "job.json", "done"


@dataclass(frozen=True)
class ImportResult:
    """What an import did: samples and shards written, shards a rerun found already staged."""

    count: int
    shards: int
    reused_shards: int


@dataclass(frozen=True)
class _Task:
    folder: SrnetFolder  # restricted to this shard's names, labels and metas
    root: str
    staging: str
    index: int
    total: int
    encoding: str


def _subset(folder: SrnetFolder, names: list[str]) -> SrnetFolder:
    wanted = set(names)
    stems = {os.path.splitext(n)[0] for n in names}
    return replace(folder, names=names, labels={k: v for k, v in folder.labels.items() if k in stems},
                   metas={k: v for k, v in folder.metas.items() if k in wanted},
                   sizes={k: v for k, v in folder.sizes.items() if k in wanted})


def import_shard(task: _Task) -> dict[str, Any]:
    """Stream one shard's samples into the staging prefix; write its done-marker; return its ShardInfo."""
    fs, _ = storage.locate(task.root)
    name = shard_name(task.index, task.total)
    samples = (task.folder.read(n) for n in task.folder.names)
    info = write_shard(storage.join(task.staging, name), samples, task.encoding, filesystem=fs).to_dict()
    marker = storage.join(task.staging, _DONE, f"{task.index:05d}.json")
    storage.atomic_write_bytes(fs, marker, json.dumps(info).encode())
    return info


def _listing(fs: pafs.FileSystem, root: str) -> list[str]:
    """Base names directly under `root` (empty if it does not exist)."""
    if fs.get_file_info(root).type == pafs.FileType.File:
        raise SrnetFolderError(f"{root}: is a file, not a dataset folder")
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    return [i.base_name for i in infos]


def _remove_tree(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass


def _job_identity(folder: SrnetFolder, shard_size: int, encoding: str) -> str:
    ident = {"names": folder.names, "sizes": [folder.sizes.get(n) for n in folder.names], "labels": folder.labels,
             "metas": sorted(folder.metas), "shard_size": shard_size, "encoding": encoding}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def _read_json(fs: pafs.FileSystem, path: str) -> Any:
    try:
        return json.loads(storage.read_bytes(fs, path))
    except (OSError, ValueError):
        return None


def _old_dataset(fs: pafs.FileSystem, out: str, overwrite: bool, job: Any) -> list[str]:
    """Files of the dataset already at `out` that a committed import replaces; refuses what is not ours."""
    names = [n for n in _listing(fs, out) if n != STAGING]
    if not names:
        return []
    if isinstance(job, dict) and job.get("old_files") is not None and MANIFEST_NAME not in names:
        return job["old_files"]  # a commit was interrupted after the old manifest went: finish it
    if MANIFEST_NAME not in names:
        raise SrnetFolderError(f"{out}: not empty and not a textsynth dataset; import into an empty or new folder")
    if not overwrite:
        raise SrnetFolderError(f"{out}: already holds a textsynth dataset; pass --overwrite to replace it")
    manifest = read_manifest(fs, out)
    return [e["file"] for e in manifest["shards"]] + [DATASET_INFO_NAME, STATE_NAME]


def import_folder(src: str, root: str, *, shard_size: int = 1000, encoding: str = "lz4", workers: int | None = None,
                  limit: int | None = None, overwrite: bool = False, progress: bool | None = None) -> ImportResult:
    """Import SRNet folder `src` into dataset `root` (path or URI); see the module docstring."""
    folder = scan_folder(src)
    if limit is not None:
        folder = _subset(folder, folder.names[:limit])
    if not folder.names:
        raise SrnetFolderError(f"{src}: no images in i_s/")
    fs, out = storage.locate(root)
    _listing(fs, out)  # refuses a file in the way before anything is read or written
    staging = storage.join(out, STAGING)
    identity = _job_identity(folder, shard_size, encoding)
    job = _read_json(fs, storage.join(staging, _JOB))
    old = _old_dataset(fs, out, overwrite, job)
    if not isinstance(job, dict) or job.get("identity") != identity:
        _remove_tree(fs, staging)  # another job's staging (entirely ours) or none: start over
        job = {"identity": identity, "old_files": None}
        storage.atomic_write_bytes(fs, storage.join(staging, _JOB), json.dumps(job).encode())
    n = len(folder.names)
    total = max(1, -(-n // shard_size))
    infos: dict[int, dict] = {}
    for k in range(total):
        info = _read_json(fs, storage.join(staging, _DONE, f"{k:05d}.json"))
        if isinstance(info, dict):
            infos[k] = info
    reused = len(infos)
    tasks = [_Task(_subset(folder, folder.names[k * shard_size:(k + 1) * shard_size]), root, staging, k, total,
                   encoding) for k in range(total) if k not in infos]
    done = sum(i["rows"] for i in infos.values())
    with Progress("import", n, done, progress) as advance:
        for task, info in run_tasks(import_shard, tasks, workers or default_workers()):
            infos[task.index] = info
            advance(info["rows"])
    _commit(fs, out, staging, job, old, [infos[k] for k in range(total)], encoding, src)
    return ImportResult(n, total, reused)


def _commit(fs: pafs.FileSystem, out: str, staging: str, job: dict, old: list[str], infos: list[dict],
            encoding: str, src: str) -> None:
    """Replace the old dataset (if any) by the staged one; restartable at every step."""
    job = {**job, "old_files": old}
    storage.atomic_write_bytes(fs, storage.join(staging, _JOB), json.dumps(job).encode())
    for name in [MANIFEST_NAME, *old]:  # the manifest first: from here on, no reader takes the folder as done
        new_here = any(i["file"] == name for i in infos)
        if not new_here:
            try:
                fs.delete_file(storage.join(out, name))
            except FileNotFoundError:
                pass
    for info in infos:
        staged = storage.join(staging, info["file"])
        target = storage.join(out, info["file"])
        if storage.file_size(fs, staged) is not None:
            fs.move(staged, target)
        elif storage.file_size(fs, target) != info["bytes"]:
            raise SrnetFolderError(f"{staged}: staged shard vanished before it was moved; rerun the import")
    if storage.is_local(fs):
        atomic.fsync_dir(out)
    write_dataset_metadata(fs, out, encoding, infos, complete=True, source={"srnet_folder": FolderTree(src).shown()})
    _remove_tree(fs, staging)
