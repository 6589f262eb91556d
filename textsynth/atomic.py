"""The one atomic-write helper for local files and folders: temp sibling, fsync, rename, folder fsync.

Readers (and a crash) see either the old content or the whole new one, never a torn file. Every
local write of a result goes through here: shards, manifests, lock records, the font cache,
checkpoints, plots, sample grids, reports. Object stores have their own rule (one PUT is atomic;
see `shards.storage.atomic_write_bytes`).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

TEMP_MARK = ".tmp-"  # every temp name holds this; cleanup code recognises textsynth's own temps by it


def temp_name(path: str | os.PathLike[str], keep_suffix: bool = False) -> str:
    """The hidden temp sibling `<dir>/.<name>.tmp-<random>` a write goes through; with keep_suffix the
    name still ends in the final suffix (for writers that pick a format from it: PNG, .npy)."""
    head, name = os.path.split(os.fspath(path))
    suffix = os.path.splitext(name)[1] if keep_suffix else ""
    return os.path.join(head, f".{name}{TEMP_MARK}{secrets.token_hex(6)}{suffix}")


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a folder so a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(os.fspath(directory) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: str) -> None:
    if os.path.isdir(path):
        for dirpath, _, files in os.walk(path):
            for f in files:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    os.fsync(fh.fileno())
            fsync_dir(dirpath)
    else:
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def commit(tmp: str | os.PathLike[str], path: str | os.PathLike[str], replace: bool = True) -> None:
    """Make the finished temp file or folder `tmp` durable and visible as `path`.

    A folder replaces an existing folder at `path` (the old one is removed only after the new one
    is complete and synced); a file replaces a file atomically. With replace=False an existing
    `path` is kept and FileExistsError raised (first writer wins)."""
    tmp, path = os.fspath(tmp), os.fspath(path)
    _fsync_tree(tmp)
    if os.path.lexists(path) and not replace:
        raise FileExistsError(path)
    if os.path.isdir(tmp) and os.path.isdir(path):
        shutil.rmtree(path)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def discard(tmp: str | os.PathLike[str]) -> None:
    """Remove a temp file or folder left by a failed write (missing is fine)."""
    tmp = os.fspath(tmp)
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def writing(path: str | os.PathLike[str], keep_suffix: bool = True) -> Iterator[str]:
    """`with writing(p) as tmp: save(tmp)`: the result appears at `p` only if the block succeeds."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    tmp = temp_name(path, keep_suffix=keep_suffix)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with writing(path, keep_suffix=False) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def temp_dir_for(path: str | os.PathLike[str]) -> Path:
    """A fresh hidden temp folder beside `path`, to assemble a folder result in before `commit`."""
    tmp = Path(temp_name(path))
    tmp.mkdir(parents=True)
    return tmp
