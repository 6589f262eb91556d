"""The dataset folder: shards `data-XXXXX-of-NNNNN.arrow`, HF's dataset_info.json/state.json, and textsynth.json.

The same folder opens with `datasets.load_from_disk`, plain pyarrow, polars, and `Dataset` here.
textsynth.json (the manifest) is written last, so its presence marks a complete dataset.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Union

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from textsynth.errors import CorruptShardError, ManifestError, ShardError
from textsynth.sample import IMAGE_KEYS, Sample
from textsynth.shards import storage
from textsynth.shards.encodings import check_encoding
from textsynth.shards.reader import RowMeta, ShardReader
from textsynth.shards.integrity import check_identity, identity_problem, manifest_problems, readable_entries
from textsynth.shards.schema import build_schema, hf_features
from textsynth.shards.writer import ShardInfo

MANIFEST_NAME = "textsynth.json"
DATASET_INFO_NAME = "dataset_info.json"
STATE_NAME = "state.json"
FORMAT_VERSION = 1  # of the manifest (shards have their own, in schema.py)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_PROBLEMS_PER_SHARD = 20

ShardEntry = Union[ShardInfo, Mapping[str, Any]]


def shard_name(index: int, total: int) -> str:
    """HF's shard file name, e.g. shard_name(3, 10) == 'data-00003-of-00010.arrow'."""
    for name, value in (("index", index), ("total", total)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"shard {name} must be an int, got {value!r}")
    if total < 1 or not 0 <= index < total:
        raise ValueError(f"shard index {index} must be in [0, total) with total >= 1, got total {total}")
    return f"data-{index:05d}-of-{total:05d}.arrow"


def _entry(info: ShardEntry) -> dict[str, Any]:
    entry = info.to_dict() if isinstance(info, ShardInfo) else dict(info)
    missing = [k for k in ("file", "rows", "bytes", "sha256") if k not in entry]
    if missing:
        raise ValueError(f"shard entry {entry!r} lacks {', '.join(missing)}")
    return entry


def _fingerprint(entries: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for e in entries:
        digest.update(f"{e['file']}:{e['sha256']}\n".encode())
    return digest.hexdigest()[:16]


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_hf_metadata(fs: pafs.FileSystem | None, root: str, schema: pa.Schema,
                      shard_infos: Iterable[ShardEntry]) -> None:
    """Write dataset_info.json and state.json exactly as `datasets.Dataset.save_to_disk` does."""
    fs, root = storage.locate(root, fs)
    entries = [_entry(i) for i in shard_infos]
    if not entries:
        raise ValueError("shard_infos is empty: datasets.load_from_disk needs at least one shard")
    info = {"citation": "", "description": "", "features": hf_features(schema), "homepage": "", "license": ""}
    state = {
        "_data_files": [{"filename": e["file"]} for e in entries],
        "_fingerprint": _fingerprint(entries),
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    storage.atomic_write_bytes(fs, storage.join(root, DATASET_INFO_NAME), _dump(info))
    storage.atomic_write_bytes(fs, storage.join(root, STATE_NAME), _dump(state))


def build_manifest(encoding: str, shard_infos: Iterable[ShardEntry], **extra: Any) -> dict[str, Any]:
    """A manifest dict: format_version, encoding, rows, shards, plus pipeline keys (config, seed, versions)."""
    check_encoding(encoding)
    entries = [_entry(i) for i in shard_infos]
    reserved = {"format_version", "encoding", "rows", "shards"} & set(extra)
    if reserved:
        raise ValueError(f"extra manifest keys {sorted(reserved)} are reserved")
    return {"format_version": FORMAT_VERSION, "encoding": encoding,
            "rows": sum(int(e["rows"]) for e in entries), "shards": entries, **extra}


def _validate_manifest(manifest: Any, where: str) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: manifest must be a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ManifestError(f"{where}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    try:
        check_encoding(manifest.get("encoding"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise ManifestError(f"{where}: 'shards' must be a list")
    seen: set[str] = set()
    for n, e in enumerate(shards):
        if not isinstance(e, dict):
            raise ManifestError(f"{where}: shards[{n}] must be an object")
        file = e.get("file")
        if not isinstance(file, str) or not file or "/" in file or "\\" in file or file.startswith("."):
            raise ManifestError(f"{where}: shards[{n}].file {file!r} is not a plain file name")
        if file in seen:
            raise ManifestError(f"{where}: shard {file!r} is listed twice")
        seen.add(file)
        for key in ("rows", "bytes"):
            v = e.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ManifestError(f"{where}: shards[{n}] ({file}).{key} {v!r} is not a non-negative int")
        if not isinstance(e.get("sha256"), str) or not _SHA256_RE.match(e["sha256"]):
            raise ManifestError(f"{where}: shards[{n}] ({file}).sha256 {e.get('sha256')!r} is not a sha256 hex")
    return manifest


def read_manifest(fs: pafs.FileSystem | None, root: str) -> dict[str, Any]:
    """Read and validate `root/textsynth.json`; ManifestError naming the file on any problem."""
    fs, root = storage.locate(root, fs)
    path = storage.join(root, MANIFEST_NAME)
    try:
        raw = storage.read_bytes(fs, path)
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no manifest (not a textsynth dataset, or not finished)") from exc
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"{path}: not valid JSON: {exc}") from exc
    return _validate_manifest(manifest, path)


def write_manifest_atomic(fs: pafs.FileSystem | None, root: str, manifest: dict[str, Any]) -> None:
    """Validate and write `root/textsynth.json` (temp + fsync + rename locally, one PUT on object stores)."""
    fs, root = storage.locate(root, fs)
    path = storage.join(root, MANIFEST_NAME)
    _validate_manifest(manifest, path)
    storage.atomic_write_bytes(fs, path, _dump(manifest))


def write_dataset_metadata(fs: pafs.FileSystem | None, root: str, encoding: str,
                           shard_infos: Iterable[ShardEntry], **extra: Any) -> dict[str, Any]:
    """Finish a dataset folder: HF json files first, then the manifest (the completion marker); returns it."""
    entries = [_entry(i) for i in shard_infos]
    write_hf_metadata(fs, root, build_schema(encoding), entries)
    manifest = build_manifest(encoding, entries, **extra)
    write_manifest_atomic(fs, root, manifest)
    return manifest


# --- verification -------------------------------------------------------------------------------

def sha256_of(fs: pafs.FileSystem, path: str) -> str:
    """sha256 hex of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_shard(fs: pafs.FileSystem | None, path: str, expected: Mapping[str, Any],
                 manifest: Mapping[str, Any] | None = None, position: int | None = None) -> list[str]:
    """Problems with one shard (empty list if sound): size, sha256, rows, schema/encoding, identity, every
    row's checksum, every image decodes.

    `expected` is a manifest entry {"file", "rows", "bytes", "sha256"}, optionally with "encoding";
    with `manifest` and `position` the shard's identity metadata is checked against them.
    """
    fs, path = storage.locate(path, fs)
    size = storage.file_size(fs, path)
    if size is None:
        return [f"{path}: shard file is missing"]
    problems: list[str] = []
    if "bytes" in expected and size != expected["bytes"]:
        problems.append(f"{path}: size {size} bytes, manifest says {expected['bytes']} (truncated or rewritten)")
    if "sha256" in expected:
        digest = sha256_of(fs, path)
        if digest != expected["sha256"]:
            problems.append(f"{path}: sha256 {digest} does not match manifest {expected['sha256']} (corrupt)")
    reader = ShardReader(path, fs)
    try:
        reader.open()
    except ShardError as exc:  # CorruptShardError or ShardSchemaError, both name the file
        return problems + [str(exc)]
    if "encoding" in expected and reader.encoding != expected["encoding"]:
        problems.append(f"{path}: encoding {reader.encoding!r}, manifest says {expected['encoding']!r}")
    if "rows" in expected and len(reader) != expected["rows"]:
        problems.append(f"{path}: {len(reader)} rows, manifest says {expected['rows']}")
    if manifest is not None and position is not None:
        wrong = identity_problem(reader.identity, manifest, expected.get("file", reader.name), position,
                                 shard_count(manifest), path)
        if wrong:
            problems.append(wrong)
    if not reader.has_checksums:
        problems.append(f"{path}: shard format {reader.layout.format_version} has no row checksums "
                        "(rows cannot be verified; regenerate the dataset)")
    bad = 0
    for i in range(len(reader)):
        row_errors: list[str] = []
        try:
            reader.verify_rows([i])
        except CorruptShardError as exc:
            row_errors.append(str(exc))
        try:
            meta = reader.meta(i, verify=False)
            if meta.get("id") != reader.row_meta(i, verify=False).id:
                row_errors.append(f"{path}: row {i}: meta id {meta.get('id')!r} differs from id column")
        except CorruptShardError as exc:
            row_errors.append(str(exc))
        for key in IMAGE_KEYS:
            try:
                reader.decode_image(i, key, verify=False)
            except CorruptShardError as exc:
                row_errors.append(str(exc))
        for msg in row_errors:
            bad += 1
            if bad <= _MAX_PROBLEMS_PER_SHARD:
                problems.append(msg)
    if bad > _MAX_PROBLEMS_PER_SHARD:
        problems.append(f"{path}: ... and {bad - _MAX_PROBLEMS_PER_SHARD} more undecodable images or rows")
    reader.close()
    return problems


def verify_dataset(root: str, filesystem: pafs.FileSystem | None = None,
                   on_shard: Callable[[int], None] | None = None) -> list[str]:
    """Problems with a whole dataset folder: manifest, HF state.json agreement, and verify_shard of each shard.

    `on_shard(rows)` is called after each shard is checked (progress bars)."""
    on_shard = on_shard or (lambda rows: None)
    fs, root = storage.locate(root, filesystem)
    try:
        manifest = read_manifest(fs, root)
    except ManifestError as exc:
        return [str(exc)]
    problems: list[str] = []
    files = [e["file"] for e in manifest["shards"]]
    problems += manifest_problems(manifest, storage.join(root, MANIFEST_NAME))
    if manifest.get("complete") is False:  # an interrupted generate: check what landed, say so
        total = manifest.get("num_shards", "?")
        problems.append(f"{root}: incomplete dataset, {len(files)} of {total} shards landed "
                        "(rerun the same generate command to finish it)")
        for n, e in enumerate(manifest["shards"]):
            problems += verify_shard(fs, storage.join(root, e["file"]), {**e, "encoding": manifest["encoding"]},
                                     manifest, n)
            on_shard(e["rows"])
        return problems
    problems += hf_metadata_problems(fs, root, manifest)
    for n, e in enumerate(manifest["shards"]):
        problems += verify_shard(fs, storage.join(root, e["file"]), {**e, "encoding": manifest["encoding"]},
                                 manifest, n)
        on_shard(e["rows"])
    return problems


def hf_metadata_problems(fs: pafs.FileSystem, root: str, manifest: Mapping[str, Any]) -> list[str]:
    """Problems with state.json / dataset_info.json: the shard list, the features, and (local folders, when
    the `datasets` package is installed) whether `datasets.load_from_disk` really opens the folder."""
    problems: list[str] = []
    files = [e["file"] for e in manifest["shards"]]
    state_path = storage.join(root, STATE_NAME)
    try:
        state = json.loads(storage.read_bytes(fs, state_path))
        listed = [d["filename"] for d in state["_data_files"]]
        if listed != files:
            problems.append(f"{state_path}: lists {listed}, manifest lists {files}")
    except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"{state_path}: unreadable HF state ({type(exc).__name__}: {exc})")
    info_path = storage.join(root, DATASET_INFO_NAME)
    try:
        info = json.loads(storage.read_bytes(fs, info_path))
        want = hf_features(build_schema(manifest["encoding"]))
        if not isinstance(info, dict) or info.get("features") != want:
            got = info.get("features") if isinstance(info, dict) else info
            problems.append(f"{info_path}: features {got!r} differ from the shards' {want!r}")
    except FileNotFoundError:
        problems.append(f"{info_path}: missing")
    except (UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{info_path}: not valid JSON ({exc})")
    if not problems and storage.is_local(fs):
        problems += _hf_open_problems(root, int(manifest["rows"]))
    return problems


def _hf_open_problems(root: str, rows: int) -> list[str]:
    """Open the folder with `datasets.load_from_disk` if that package is installed; its error, named, if it fails."""
    try:
        import datasets
    except ImportError:
        return []
    try:
        n = len(datasets.load_from_disk(root, keep_in_memory=False))
    except Exception as exc:  # noqa: BLE001 - any failure of the HF reader is the finding
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return [f"{root}: datasets.load_from_disk fails: {type(exc).__name__}: {first[:300]}"]
    if n != rows:
        return [f"{root}: datasets.load_from_disk sees {n} rows, the manifest says {rows}"]
    return []


# --- reading ------------------------------------------------------------------------------------

def shard_count(manifest: Mapping[str, Any]) -> int:
    """How many shards the dataset has when complete (num_shards of a generate manifest, else as listed)."""
    n = manifest.get("num_shards")
    return n if isinstance(n, int) and not isinstance(n, bool) else len(manifest["shards"])


class Dataset:
    """All shards of a dataset folder as one indexable collection; global index -> (shard, row) by cumsum.

    Opening refuses an incomplete or self-contradicting manifest (IncompleteDatasetError) unless
    `allow_partial`; each shard's identity and row count are checked on its first use, each row's
    checksum on its first read.
    """

    def __init__(self, root: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None,
                 allow_partial: bool = False) -> None:
        self._fs, self.root = storage.locate(root, filesystem)
        self.manifest = read_manifest(self._fs, self.root)
        self.encoding: str = self.manifest["encoding"]
        where = storage.join(self.root, MANIFEST_NAME)
        entries = readable_entries(self._fs, self.root, self.manifest, where, allow_partial)
        self.entries = entries
        self.shards = [ShardReader(storage.join(self.root, e["file"]), self._fs) for e in entries]
        self._rows = np.array([e["rows"] for e in entries], dtype=np.int64)
        self._ends = np.cumsum(self._rows)
        self._checked = np.zeros(len(entries), dtype=bool)
        self._size_cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self._ends[-1]) if self._ends.size else 0

    def __repr__(self) -> str:
        return f"Dataset({self.root!r}, shards={len(self.shards)}, rows={len(self)})"

    def shard(self, k: int) -> ShardReader:
        """Shard reader k, checked once against the manifest's row count."""
        reader = self.shards[k]
        if not self._checked[k]:
            if len(reader) != self._rows[k]:
                raise CorruptShardError(f"{reader.path}: {len(reader)} rows, manifest says {int(self._rows[k])}")
            check_identity(reader.identity, self.manifest, self.entries[k]["file"], k, shard_count(self.manifest),
                           reader.path)
            self._checked[k] = True
        return reader

    def locate(self, i: int) -> tuple[int, int]:
        """(shard index, row within shard) of global index i (negative counts from the end)."""
        n = len(self)
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"index {i} out of range for dataset with {n} rows")
        k = int(np.searchsorted(self._ends, j, side="right"))
        return k, j - int(self._ends[k] - self._rows[k])

    def __getitem__(self, i: int) -> Sample:
        k, row = self.locate(i)
        return self.shard(k)[row]

    def __iter__(self) -> Iterator[Sample]:
        for k in range(len(self.shards)):
            yield from self.shard(k)

    def row_meta(self, i: int) -> RowMeta:
        """id, texts and size of global row i without decoding images."""
        k, row = self.locate(i)
        return self.shard(k).row_meta(row)

    def image_bytes(self, i: int, key: str) -> np.ndarray:
        """Zero-copy view of global row i's encoded image `key`."""
        k, row = self.locate(i)
        return self.shard(k).image_bytes(row, key)

    def decode_image(self, i: int, key: str) -> np.ndarray:
        """Decoded image `key` of global row i."""
        k, row = self.locate(i)
        return self.shard(k).decode_image(row, key)

    def _sizes(self, attr: str) -> np.ndarray:
        cached = self._size_cache.get(attr)
        if cached is None:
            parts = [getattr(self.shard(k), attr) for k in range(len(self.shards))]
            cached = np.concatenate(parts) if parts else np.empty(0, np.int32)
            cached.setflags(write=False)
            self._size_cache[attr] = cached
        return cached

    @property
    def widths(self) -> np.ndarray:
        """Read-only int32 widths of every row in global order (opens every shard once)."""
        return self._sizes("widths")

    @property
    def heights(self) -> np.ndarray:
        """Read-only int32 heights of every row in global order (opens every shard once)."""
        return self._sizes("heights")

    def close(self) -> None:
        """Release every shard's mapping (they reopen lazily)."""
        for reader in self.shards:
            reader.close()
