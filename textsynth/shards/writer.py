"""ShardWriter: validated Samples in, one uncompressed Arrow IPC stream shard out, written atomically.

Local shards go to `<dir>/.<name>.tmp-<random>` and are fsynced and renamed on close(). Remote shards
(S3 and other object stores) are buffered in memory and uploaded to the final key on close(), so an
aborted write never leaves an object behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, BinaryIO, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from textsynth import atomic
from textsynth.errors import InvalidSampleError, ShardError
from textsynth.sample import IMAGE_CHANNELS, IMAGE_KEYS, Sample, json_default
from textsynth.shards import storage
from textsynth.shards.checksum import FIELDS, row_checksum
from textsynth.shards.encodings import DEFAULT_ENCODING, get_codec
from textsynth.shards.schema import CHECKSUM_COLUMN, build_schema

_MAX_SIDE = 2**31 - 1


@dataclass(frozen=True)
class ShardInfo:
    """What close() reports about a finished shard: file name, row count, size and sha256 of its bytes."""

    file: str
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry {"file", "rows", "bytes", "sha256"}."""
        return asdict(self)


class _HashingSink:
    """A write-only file object that hashes and counts what it forwards, so close() needs no re-read."""

    def __init__(self, target: BinaryIO | pa.NativeFile) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self.size += view.nbytes
        self.target.write(view)
        return view.nbytes

    def flush(self) -> None:
        self.target.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:  # the writer owns the target; pa.PythonFile must not close it
        self.closed = True


def validate_sample(sample: Sample) -> tuple[str, int, int]:
    """Check a sample's id/texts and its eight images; return (id, H, W) or raise InvalidSampleError."""
    if not isinstance(sample, Sample):
        raise InvalidSampleError(f"expected a Sample, got {type(sample).__name__}")
    meta = sample.meta
    if not isinstance(meta, dict):
        raise InvalidSampleError(f"sample meta must be a dict, got {type(meta).__name__}")
    sid = meta.get("id")
    if not isinstance(sid, str) or not sid:
        raise InvalidSampleError(f"sample meta['id'] must be a non-empty string, got {sid!r}")
    for field in ("text_s", "text_t"):
        if not isinstance(meta.get(field), str):
            raise InvalidSampleError(f"sample {sid!r}: meta[{field!r}] must be a string, got {meta.get(field)!r}")
    images = sample.images
    missing = [k for k in IMAGE_KEYS if k not in images]
    if missing:
        raise InvalidSampleError(f"sample {sid!r}: missing image(s) {', '.join(missing)}")
    extra = sorted(set(images) - set(IMAGE_KEYS))
    if extra:
        raise InvalidSampleError(f"sample {sid!r}: unknown image key(s) {', '.join(extra)}")
    height = width = -1
    for key in IMAGE_KEYS:
        arr = images[key]
        if not isinstance(arr, np.ndarray):
            raise InvalidSampleError(f"sample {sid!r} image {key!r}: expected a numpy array, got {type(arr).__name__}")
        if arr.dtype != np.uint8:
            raise InvalidSampleError(f"sample {sid!r} image {key!r}: dtype {arr.dtype}, expected uint8")
        channels = IMAGE_CHANNELS[key]
        if (channels == 3 and (arr.ndim != 3 or arr.shape[2] != 3)) or (channels == 1 and arr.ndim != 2):
            raise InvalidSampleError(
                f"sample {sid!r} image {key!r}: shape {arr.shape}, expected {channels} channel(s)")
        if key == IMAGE_KEYS[0]:
            height, width = int(arr.shape[0]), int(arr.shape[1])
            if not (0 < height <= _MAX_SIDE and 0 < width <= _MAX_SIDE):
                raise InvalidSampleError(f"sample {sid!r} image {key!r}: empty or oversized shape {arr.shape}")
        elif arr.shape[:2] != (height, width):
            raise InvalidSampleError(
                f"sample {sid!r} image {key!r}: size {arr.shape[:2]} differs from {IMAGE_KEYS[0]} {(height, width)}")
    return sid, height, width


def _column(values: list[Any], type_: pa.DataType) -> pa.Array:
    """One column of a batch; image bytes go into HF's Image struct (path null) where the schema says so."""
    if pa.types.is_struct(type_):
        return pa.StructArray.from_arrays([pa.array(values, pa.binary()), pa.nulls(len(values), pa.string())],
                                          fields=list(type_))
    return pa.array(values, type=type_)


class ShardWriter:
    """Write Samples to one Arrow IPC stream shard: `write(sample)` each, then `close()` -> ShardInfo.

    Every row gets a checksum (checksum.py); `identity` {"fingerprint", "index", "total"} is stored in
    the schema metadata so readers can tell a swapped or foreign shard from the right one.
    """

    def __init__(self, path: str | os.PathLike[str], encoding: str = DEFAULT_ENCODING,
                 filesystem: pafs.FileSystem | None = None, identity: dict[str, Any] | None = None,
                 batch_rows: int = 64) -> None:
        if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
            raise ValueError(f"batch_rows must be a positive int, got {batch_rows!r}")
        self._codec = get_codec(encoding)
        self.encoding = encoding
        self.batch_rows = batch_rows
        self._fs, self.path = storage.locate(path, filesystem)
        self.name = posixpath.basename(self.path.replace(os.sep, "/"))
        if not self.name or self.name in (".", ".."):
            raise ValueError(f"path {os.fspath(path)!r} does not name a file")
        self.schema = build_schema(encoding, identity)
        self.identity = identity
        self._local = storage.is_local(self._fs)
        self._tmp: str | None = None
        self._file: BinaryIO | None = None
        self._buffer: pa.BufferOutputStream | None = None
        self._sink: _HashingSink | None = None
        self._ipc: pa.ipc.RecordBatchStreamWriter | None = None
        self._pending: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        self._rows = 0
        self._state = "new"  # new -> open -> closed | aborted
        self.info: ShardInfo | None = None  # set by close()

    # --- lifecycle -----------------------------------------------------------------------------

    def _open(self) -> None:
        if self._local:
            directory = os.path.dirname(self.path)
            os.makedirs(directory, exist_ok=True)
            self._tmp = atomic.temp_name(self.path)
            self._file = open(self._tmp, "xb")
            target: BinaryIO | pa.NativeFile = self._file
        else:
            self._buffer = pa.BufferOutputStream()
            target = self._buffer
        self._sink = _HashingSink(target)
        self._ipc = pa.ipc.new_stream(pa.PythonFile(self._sink, mode="w"), self.schema)
        self._state = "open"

    def _check_writable(self) -> None:
        if self._state in ("closed", "aborted"):
            raise ShardError(f"{self.path}: writer is already {self._state}")

    def write(self, sample: Sample) -> None:
        """Validate, encode and append one sample; a full batch of `batch_rows` is flushed to the file."""
        self._check_writable()
        sid, height, width = validate_sample(sample)
        row: dict[str, Any] = {"id": sid, "text_s": sample.meta["text_s"], "text_t": sample.meta["text_t"],
                               "height": height, "width": width}
        for key in IMAGE_KEYS:
            try:
                row[key] = self._codec.encode(key, sample.images[key])
            except ValueError as exc:
                raise InvalidSampleError(f"sample {sid!r} image {key!r}: {exc}") from exc
        try:
            row["meta"] = json.dumps(sample.meta, ensure_ascii=False, separators=(",", ":"), default=json_default)
        except (TypeError, ValueError) as exc:
            raise InvalidSampleError(f"sample {sid!r}: meta is not JSON serialisable: {exc}") from exc
        try:
            stored = [row[f].encode("utf-8") if isinstance(row[f], str) else row[f] for f in FIELDS]
        except UnicodeEncodeError as exc:
            raise InvalidSampleError(f"sample {sid!r}: text is not encodable as UTF-8: {exc}") from exc
        row[CHECKSUM_COLUMN] = row_checksum(height, width, stored)
        if self._state == "new":
            self._open()
        for name, value in row.items():
            self._pending[name].append(value)
        self._rows += 1
        if len(self._pending["id"]) >= self.batch_rows:
            self._flush_batch()

    def _flush_batch(self) -> None:
        if not self._pending["id"]:
            return
        columns = [_column(self._pending[f.name], f.type) for f in self.schema]
        batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        self._stream().write_batch(batch)
        self._pending = {name: [] for name in self.schema.names}

    def _stream(self) -> pa.ipc.RecordBatchStreamWriter:
        if self._ipc is None:
            raise ShardError(f"{self.path}: writer is not open")
        return self._ipc

    def close(self) -> ShardInfo:
        """Flush, finish the stream, make the file durable and visible under its final name."""
        self._check_writable()
        try:
            if self._state == "new":
                self._open()
            self._flush_batch()
            self._stream().close()
            if self._file is not None and self._tmp is not None:
                self._file.close()
                atomic.commit(self._tmp, self.path)
                self._tmp = None
            elif self._buffer is not None:
                data = self._buffer.getvalue()
                storage.ensure_dir(self._fs, posixpath.dirname(self.path))
                with self._fs.open_output_stream(self.path) as out:
                    out.write(data)
                self._buffer = None
        except BaseException:
            self.abort()
            raise
        sink = self._sink
        if sink is None:
            raise ShardError(f"{self.path}: writer lost its output")
        self._state = "closed"
        self.info = ShardInfo(file=self.name, rows=self._rows, bytes=sink.size, sha256=sink.sha256.hexdigest())
        return self.info

    def abort(self) -> None:
        """Drop everything written so far: close and delete the temp file; no final file appears."""
        if self._state in ("closed", "aborted"):
            return
        self._state = "aborted"
        self._ipc = None
        self._buffer = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None

    @property
    def rows(self) -> int:
        """Rows accepted so far."""
        return self._rows

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state not in ("closed", "aborted"):
            self.close()

    def __del__(self) -> None:  # a forgotten writer must not leave temp files behind
        try:
            self.abort()
        except Exception:
            pass


def write_shard(path: str | os.PathLike[str], samples: Iterable[Sample], encoding: str = DEFAULT_ENCODING,
                filesystem: pafs.FileSystem | None = None, identity: dict[str, Any] | None = None) -> ShardInfo:
    """Write `samples` as one shard at `path`, atomically; nothing is left behind if one fails."""
    with ShardWriter(path, encoding=encoding, filesystem=filesystem, identity=identity) as writer:
        for sample in samples:
            writer.write(sample)
        return writer.close()
