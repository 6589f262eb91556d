"""The output folder as the driver sees it: --out resolved once, created, and each reported shard
checked on it (a worker on a node that does not share the folder would otherwise go unnoticed)."""
from __future__ import annotations

import os
from typing import Any

from ..errors import TextsynthError
from ..shards import storage
from ..shards.dataset import sha256_of


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


def make_dir(fs, root: str, out: str) -> None:
    """Create the output folder (`out`: --out as given) and check this user may write to it."""
    where = storage.redact(out)
    try:
        storage.ensure_dir(fs, root)
    except OSError as e:
        raise TextsynthError(f"cannot create {where}: {getattr(e, 'strerror', None) or e}") from None
    if storage.is_local(fs) and not os.access(root, os.W_OK | os.X_OK):
        raise TextsynthError(f"cannot write to {where}: permission denied")


def check_landed(fs, root: str, entry: dict, stats: dict) -> None:
    """The driver sees the shard a worker reports, with the size and sha256 the worker wrote."""
    path = storage.join(root, entry["file"])
    size = storage.file_size(fs, path)
    digest = sha256_of(fs, path) if size == entry["bytes"] else None
    if digest != entry["sha256"]:
        seen = "missing" if size is None else f"{size} bytes" + (", other sha256" if size == entry["bytes"] else "")
        raise TextsynthError(storage.redact(
            f"shard {entry['file']} written by node {stats.get('node_ip', '?')} ({str(stats.get('node', '?'))[:12]}) "
            f"is not what the driver sees at {path} ({seen}; expected {entry['bytes']} bytes): "
            "the nodes do not share this output folder"))
