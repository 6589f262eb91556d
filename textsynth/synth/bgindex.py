"""Background pool index: every usable image of a pool as (name, where, bytes, sha256, size), built once.

A pool is the bundled photos plus any number of sources: a folder (recursive), a glob, a list file
(`.txt`/`.lst`, one path or URI per line) or an object-store prefix (`s3://bucket/prefix?...`).
Indexing reads each file once (content hash, image header only); workers then read images lazily
by index entry, so what travels to them grows with the entry count, not with the pixels.
"""
from __future__ import annotations

import glob as globlib
import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..assets import asset_root
from ..errors import BackgroundError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
LIST_SUFFIXES = (".txt", ".lst")
MAX_PIXELS = 50_000_000  # larger images are refused unread (decompression-bomb guard)
BUNDLED = "bundled"


@dataclass(frozen=True)
class Entry:
    """One indexed image. `source` is BUNDLED, "" (a local path) or the object-store URI it was listed from."""

    name: str
    source: str
    path: str
    bytes: int
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class Rejected:
    path: str
    reason: str


def _is_uri(s: str) -> bool:
    return "://" in s


def _fs_for(source: str):
    from ..shards.storage import locate

    return locate(source)[0]


_FS_CACHE: dict[str, object] = {}


def _read(source: str, path: str) -> bytes:
    if source == BUNDLED:
        return (asset_root() / "backgrounds" / path).read_bytes()
    if source:
        fs = _FS_CACHE.get(source) or _FS_CACHE.setdefault(source, _fs_for(source))
        with fs.open_input_stream(path) as fh:  # type: ignore[attr-defined]
            return fh.read()
    return Path(path).read_bytes()


def read_entry_bytes(e: Entry) -> bytes:
    """The file's bytes; raises BackgroundError naming it when unreadable or changed since indexing."""
    try:
        data = _read(e.source, e.path)
    except OSError as err:
        raise BackgroundError(f"cannot read background {e.path}: {err.strerror or err}") from err
    if hashlib.sha256(data).hexdigest() != e.sha256:
        raise BackgroundError(f"background {e.path} changed since the pool was indexed (sha256 differs)")
    return data


def _probe(name: str, source: str, path: str, data: bytes, min_side: int) -> Entry:
    """Header check (format, size, bomb guard) without decoding the pixels."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if (im.getexif() or {}).get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BackgroundError(f"not a readable image ({err})") from err
    if w * h > MAX_PIXELS:
        raise BackgroundError(f"image too large ({w}x{h} > {MAX_PIXELS} px, possible decompression bomb)")
    if min(w, h) < min_side:
        raise BackgroundError(f"image too small ({w}x{h}, min side {min_side})")
    return Entry(name, source, path, len(data), hashlib.sha256(data).hexdigest(), w, h)


def _candidates(raw: str) -> list[tuple[str, str, str]]:
    """(name, source, path) of every image file a source names; missing sources raise BackgroundError."""
    if _is_uri(raw):
        import pyarrow.fs as pafs

        from ..shards.storage import locate

        fs, root = locate(raw)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File:
            return [(Path(root).name, raw, root)]
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        files = sorted(i.path for i in infos if i.type == pafs.FileType.File
                       and Path(i.path).suffix.lower() in IMAGE_SUFFIXES)
        if not files and info.type == pafs.FileType.NotFound:
            raise BackgroundError(f"background source not found: {raw}")
        return [(f[len(root):].lstrip("/"), raw, f) for f in files]
    p = Path(raw).expanduser()
    if any(c in raw for c in "*?["):
        files = sorted(Path(f) for f in globlib.glob(str(p), recursive=True))
        return [(f.name, "", str(f.resolve())) for f in files if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if p.is_dir():
        return [(str(q.relative_to(p)), "", str(q.resolve())) for q in sorted(p.rglob("*"))
                if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES]
    if p.suffix.lower() in LIST_SUFFIXES and p.is_file():
        out = []
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out += _candidates(line if _is_uri(line) or Path(line).is_absolute() else str(p.parent / line))
        return out
    return [(p.name, "", str(p.resolve()))]  # a single file (missing ones are rejected, naming them)


def build_index(bundled: bool, sources: tuple[str, ...] | list[str], min_side: int
                ) -> tuple[list[Entry], list[Rejected]]:
    """Index the bundled photos (per backgrounds/manifest.json) and every source; unusable files are
    listed in `rejected` with the reason instead of stopping the run."""
    import json

    cands: list[tuple[str, str, str]] = []
    if bundled:
        manifest = json.loads((asset_root() / "backgrounds" / "manifest.json").read_text(encoding="utf-8"))
        cands += [(e["file"], BUNDLED, e["file"]) for e in manifest["images"]]
    for raw in sources:
        cands += _candidates(str(raw))
    entries: list[Entry] = []
    rejected: list[Rejected] = []
    for name, source, path in cands:
        shown = path if source in ("", BUNDLED) else f"{source.split('?')[0].rstrip('/')}/{name}"
        try:
            entries.append(_probe(name, source, path, _read(source, path), min_side))
        except OSError as err:
            rejected.append(Rejected(shown, f"cannot read: {err.strerror or err}"))
        except BackgroundError as err:
            rejected.append(Rejected(shown, str(err)))
    return entries, rejected


def warn_rejected(rejected: list[Rejected]) -> None:
    for r in rejected:
        warnings.warn(f"skipping background {r.path}: {r.reason}", stacklevel=3)
