"""`textsynth export`: a dataset (local or object storage) into PNG folder layouts other codebases read.

Formats: "srnet" (the SRNet-Datagen layout plus MOSTEL's txt/ and label files, see srnet_folder)
and "srnet-predict" (flat NAME_i_s.png / NAME_i_t.png pairs, the public SRNet port's predict.py
input, nothing else in the folder). Work is one task per shard in a process pool. Everything is
written into a staging folder beside OUT (`.<OUT name>.textsynth-export`), a finished shard leaves a
done-marker there (a rerun resumes), and only a complete export is moved into OUT: a failed or
killed export leaves nothing in OUT. OUT must be empty unless `overwrite`, and then only files a
previous textsynth export wrote are removed (after the new export is complete).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from textsynth import atomic
from textsynth.errors import SrnetFolderError
from textsynth.parallel import Progress, default_workers, run_tasks
from textsynth.sample import IMAGE_KEYS
from textsynth.shards import storage
from textsynth.shards.dataset import read_manifest
from textsynth.shards.integrity import check_identity, readable_entries
from textsynth.interop.srnet_folder import (LABEL_FILES, META_FILE, PLAIN_LABEL_FILES, TXT_DIR, check_text, encode_png,
                                    meta_line, name_digits)

FORMATS = ("srnet", "srnet-predict")
RECORD = "textsynth-export.json"  # what a srnet export wrote, so --overwrite removes exactly that
_PREDICT_FILE = re.compile(r"^\d+_i_[st]\.png$")
_JOB, _DONE = ".job.json", ".done"


@dataclass(frozen=True)
class ExportResult:
    """What an export did: samples in OUT, and how many shards a rerun found already done."""

    count: int
    out: str
    reused_shards: int


@dataclass(frozen=True)
class _Task:
    root: str
    file: str
    rows: int
    take: int
    start: int
    index: int
    fmt: str
    digits: int
    staging: str
    glyph_masks: bool
    config: dict | None
    fingerprint: str | None  # the manifest's dataset fingerprint, checked against each shard's identity
    shards: int  # how many shards the manifest lists (the identity's expected total when names don't say)


def _local_out(out: str) -> Path:
    return Path(os.path.abspath(out))


def _remote_old_files(fs: Any, prefix: str, shown: str) -> list[str]:
    """Relative keys of a previous textsynth export under an object-store prefix; refuse anything else."""
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    existing = {i.path[len(prefix.rstrip("/")) + 1:] for i in infos if i.type == pafs.FileType.File}
    if not existing:
        return []
    if RECORD in existing:
        try:
            listed = set(_recorded_files(json.loads(storage.read_bytes(fs, storage.join(prefix, RECORD)))))
        except (ValueError, KeyError, TypeError) as exc:
            raise SrnetFolderError(f"{shown}/{RECORD}: unreadable export record ({exc}); remove OUT by hand") from exc
        foreign = sorted(existing - listed - {RECORD})
        if not foreign:
            return sorted(existing)
    elif all(_PREDICT_FILE.match(k) for k in existing):
        return sorted(existing)  # a previous srnet-predict export
    raise SrnetFolderError(f"{shown}: holds objects no textsynth export wrote; export into an empty or new prefix")


def _export_remote(root: str, out: str, fmt: str, overwrite: bool, **kw: Any) -> ExportResult:
    """Export to an object-store prefix: assembled in a local temp folder first (nothing is uploaded unless
    the whole export succeeded), then uploaded object by object with the record last, so a prefix without
    the record is an unfinished upload; --overwrite then removes the previous export's leftover keys."""
    import tempfile

    fs, prefix = storage.locate(out)
    shown = storage.redact(out.split("?", 1)[0])
    old = _remote_old_files(fs, prefix, shown)
    if old and not overwrite:
        raise SrnetFolderError(f"{shown}: holds a previous export; pass --overwrite to replace it")
    with tempfile.TemporaryDirectory(prefix="textsynth-export-") as tmp:
        local = Path(tmp) / "out"
        result = export_dataset(root, str(local), fmt, **kw)
        if RECORD in old:
            fs.delete_file(storage.join(prefix, RECORD))  # the old export stops being complete first
        record = local / RECORD
        new = [p for p in sorted(local.rglob("*")) if p.is_file() and p != record]
        for p in new + ([record] if record.exists() else []):
            storage.atomic_write_bytes(fs, storage.join(prefix, *p.relative_to(local).parts), p.read_bytes())
        uploaded = {"/".join(p.relative_to(local).parts) for p in new} | {RECORD}
        for key in old:
            if key not in uploaded:
                fs.delete_file(storage.join(prefix, key))
    return ExportResult(result.count, shown, 0)


def staging_dir(out: Path) -> Path:
    """The folder an export into `out` is assembled in."""
    return out.parent / f".{out.name}.textsynth-export"


def _old_files(out: Path, fmt: str) -> list[Path]:
    """Files of a previous textsynth export in `out` (to delete on --overwrite); refuse anything else."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise SrnetFolderError(f"{out}: exists and is not a folder")
    entries = list(out.iterdir())
    if not entries:
        return []
    record = out / RECORD
    if record.is_file():
        try:
            files = [out / rel for rel in _recorded_files(json.loads(record.read_text(encoding="utf-8")))]
        except (ValueError, KeyError, TypeError) as exc:
            raise SrnetFolderError(f"{record}: unreadable export record ({exc}); remove OUT by hand") from exc
        return [p for p in files if p.is_file()] + [record]
    if all(p.is_file() and _PREDICT_FILE.match(p.name) for p in entries):
        return entries  # a previous srnet-predict export: nothing but NAME_i_s.png / NAME_i_t.png pairs
    raise SrnetFolderError(f"{out}: holds files no textsynth export wrote; export into an empty or new folder")


def _job_identity(root: str, manifest: dict, fmt: str, total: int, glyph_masks: bool) -> str:
    ident = {"shards": [e["sha256"] for e in manifest["shards"]], "format": fmt, "count": total,
             "glyph_masks": glyph_masks}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _prepare_staging(staging: Path, identity: str) -> None:
    """Reuse a staging folder of the same job (resume); anything else there was ours too: start over."""
    job = staging / _JOB
    if staging.exists():
        try:
            same = json.loads(job.read_text())["identity"] == identity
        except (OSError, ValueError, KeyError, TypeError):
            same = False
        if same:
            return
        shutil.rmtree(staging)
    (staging / _DONE).mkdir(parents=True)
    storage.atomic_write_bytes(pafs.LocalFileSystem(), str(job), json.dumps({"identity": identity}).encode())


def _synthesizer(config: dict) -> Any:
    """The dataset's own recipe, to re-render samples from their metadata (built once per shard task)."""
    from textsynth.config import SynthConfig
    from textsynth.synth.synthesizer import Synthesizer

    return Synthesizer(SynthConfig.from_dict(config))


def _glyph_masks(syn: Any, meta: dict, stored_mask_t: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask_t, mask_s) as soft glyph alpha only (no border/shadow), re-rendered from the sample's meta."""
    again, comp = syn.render_layers(meta)
    if not np.array_equal(again.images["mask_t"], stored_mask_t):
        raise SrnetFolderError(f"{where}: sample {meta.get('id')!r} does not re-render from its metadata "
                               "(made by another textsynth version?); export without --glyph-masks")
    return tuple(np.clip(np.rint(comp.layers[i].glyph * 255.0), 0, 255).astype(np.uint8) for i in (1, 0))  # type: ignore


def export_shard(task: _Task) -> int:
    """Write the first `take` rows of one shard into the staging folder and a done-marker holding
    [name, text_s, text_t, meta line] per row (the label files are assembled from it; a rerun skips
    the shard); returns the row count."""
    from textsynth.shards.reader import ShardReader

    fs, root = storage.locate(task.root)
    path = storage.join(root, task.file)
    if storage.file_size(fs, path) is None:
        raise SrnetFolderError(f"{path}: shard file is missing (listed in the manifest)")
    reader = ShardReader(path, fs)
    check_identity(reader.layout.identity, {"fingerprint": task.fingerprint}, task.file, task.index, task.shards,
                   storage.redact(path))
    staging = Path(task.staging)
    rows: list[list[str]] = []
    syn = _synthesizer(task.config or {}) if task.glyph_masks and task.take else None
    try:
        if len(reader) != task.rows:
            raise SrnetFolderError(f"{path}: {len(reader)} rows, manifest says {task.rows}")
        for r in range(task.take):
            sample = reader[r]
            stem = f"{task.start + r:0{task.digits}d}"
            name = stem + ".png"
            meta = sample.meta
            texts = [check_text(meta.get("id"), f, str(meta.get(f, ""))) for f in LABEL_FILES]
            images = dict(sample.images)
            if task.glyph_masks:
                images["mask_t"], images["mask_s"] = _glyph_masks(syn, meta, images["mask_t"], path)
            if task.fmt == "srnet-predict":
                for key in ("i_s", "i_t"):
                    (staging / f"{stem}_{key}.png").write_bytes(encode_png(key, images[key], f"{path} row {r}"))
            else:
                for key in IMAGE_KEYS:
                    (staging / key / name).write_bytes(encode_png(key, images[key], f"{path} row {r}"))
                (staging / TXT_DIR / f"{stem}.txt").write_text(f"{texts[0]} {texts[1]}\n", encoding="utf-8")
            rows.append([name, texts[0], texts[1], meta_line(name, meta)])
    finally:
        reader.close()
    marker = staging / _DONE / f"{task.index:05d}.json"
    storage.atomic_write_bytes(pafs.LocalFileSystem(), str(marker), json.dumps(rows, ensure_ascii=False).encode())
    return len(rows)


def _plan(root: str, manifest: dict, entries: list[dict], total: int, fmt: str, staging: Path,
          glyph_masks: bool) -> list[_Task]:
    tasks, start = [], 0
    digits = name_digits(total)
    config = manifest.get("config") if glyph_masks else None
    if glyph_masks and not isinstance(config, dict):
        raise SrnetFolderError(f"{root}: no recipe in its manifest (imported?); glyph masks need one to re-render")
    for k, e in enumerate(entries):
        take = min(int(e["rows"]), total - start)
        if take <= 0:
            break
        tasks.append(_Task(root, e["file"], int(e["rows"]), take, start, k, fmt, digits, str(staging),
                           glyph_masks, config, manifest.get("fingerprint"), len(manifest["shards"])))
        start += take
    return tasks


def _recorded_files(record: dict) -> list[str]:
    """Every file (relative path) a srnet export with this record wrote, the record itself excepted."""
    count, digits = int(record["count"]), int(record["digits"])
    stems = [f"{i:0{digits}d}" for i in range(count)]
    files = [f"{d}/{stem}.png" for d in record["image_dirs"] for stem in stems]
    files += [f"{d}/{stem}.txt" for d in record["text_dirs"] for stem in stems]
    return files + list(record["files"])


def _write_labels(staging: Path, tasks: list[_Task], fmt: str) -> int:
    """Label files (streamed from the done-markers, one shard's rows in memory at a time) and the
    export record; returns the sample count."""
    n = 0
    if fmt == "srnet-predict":
        for t in tasks:
            n += len(json.loads((staging / _DONE / f"{t.index:05d}.json").read_text(encoding="utf-8")))
        return n
    names = [*LABEL_FILES.values(), *PLAIN_LABEL_FILES.values(), META_FILE]
    handles = {name: open(staging / name, "w", encoding="utf-8") for name in names}
    try:
        for t in tasks:
            rows = json.loads((staging / _DONE / f"{t.index:05d}.json").read_text(encoding="utf-8"))
            n += len(rows)
            for i, f in enumerate(LABEL_FILES, start=1):
                handles[LABEL_FILES[f]].write("".join(f"{r[0]} {r[i]}\n" for r in rows))
                handles[PLAIN_LABEL_FILES[f]].write("".join(r[i] + "\n" for r in rows))
            handles[META_FILE].write("".join(r[3] for r in rows))
    finally:
        for h in handles.values():
            h.close()
    digits = tasks[0].digits if tasks else 3
    record = {"format": fmt, "count": n, "digits": digits, "image_dirs": list(IMAGE_KEYS), "text_dirs": [TXT_DIR],
              "files": names}
    (staging / RECORD).write_text(json.dumps(record) + "\n", encoding="utf-8")
    return n


def _commit(staging: Path, out: Path, old: list[Path]) -> None:
    """Move the finished export into OUT: a rename when OUT is empty, else delete the old export's
    files (they are listed; nothing else is touched) and move the new files in, the record last."""
    shutil.rmtree(staging / _DONE, ignore_errors=True)
    (staging / _JOB).unlink(missing_ok=True)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic.commit(staging, out)
        return
    for p in old:
        p.unlink(missing_ok=True)
    for d in sorted({p.parent for p in old if p.parent != out}, reverse=True):
        try:
            d.rmdir()  # only if the old export left it empty
        except OSError:
            pass
    record = staging / RECORD
    for src in sorted(staging.rglob("*")):
        if src.is_file() and src != record:
            dst = out / src.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    if record.exists():
        os.replace(record, out / RECORD)
    shutil.rmtree(staging)


def export_dataset(root: str, out: str, fmt: str = "srnet", *, workers: int | None = None, limit: int | None = None,
                   overwrite: bool = False, glyph_masks: bool = False, progress: bool | None = None,
                   allow_partial: bool = False) -> ExportResult:
    """Export dataset `root` (path or URI) into local folder `out`; see the module docstring."""
    if fmt not in FORMATS:
        raise SrnetFolderError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    if "://" in out:
        return _export_remote(root, out, fmt, overwrite, workers=workers, limit=limit, glyph_masks=glyph_masks,
                              progress=progress, allow_partial=allow_partial)
    out_path = _local_out(out)
    fs, root_path = storage.locate(root)
    manifest = read_manifest(fs, root_path)
    entries = readable_entries(fs, root_path, manifest, storage.redact(root), allow_partial)
    rows = sum(int(e["rows"]) for e in entries)
    total = rows if limit is None else min(int(limit), rows)
    old = _old_files(out_path, fmt)
    if old and not overwrite:
        raise SrnetFolderError(f"{out_path}: holds a previous export; pass --overwrite to replace it")
    staging = staging_dir(out_path)
    tasks = _plan(root, manifest, entries, total, fmt, staging, glyph_masks)
    _prepare_staging(staging, _job_identity(root, manifest, fmt, total, glyph_masks))
    if fmt == "srnet":
        for key in (*IMAGE_KEYS, TXT_DIR):
            (staging / key).mkdir(exist_ok=True)
    done = {t.index: staging / _DONE / f"{t.index:05d}.json" for t in tasks}
    todo = [t for t in tasks if not done[t.index].is_file()]
    done_rows = sum(t.take for t in tasks if done[t.index].is_file())
    try:
        with Progress(f"export {fmt}", total, done_rows, progress) as advance:
            for task, rows in run_tasks(export_shard, todo, workers or default_workers()):
                advance(rows)
        count = _write_labels(staging, tasks, fmt)
    except Exception:  # bad data: a rerun would fail the same way, so leave nothing (a kill keeps it to resume)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _commit(staging, out_path, old)
    return ExportResult(count, str(out_path), len(tasks) - len(todo))


def export_srnet(dataset_root: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                 allow_partial: bool = False) -> int:
    """Export every sample of the dataset at `dataset_root` to an SRNet folder (one process); returns the count."""
    return export_dataset(str(dataset_root), str(out_dir), workers=1, progress=False,
                          allow_partial=allow_partial).count
