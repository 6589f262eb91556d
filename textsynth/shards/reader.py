"""ShardReader: random access to one shard, memory-mapped, with a zero-copy numpy path for loaders.

Each variable-size column (images, ids, texts, meta) is indexed once as absolute (start, end) byte
offsets into the mapped file, so per-row access is numpy slicing instead of pyarrow scalar access.
The file is opened lazily and handles are dropped on pickling, so readers ship cheaply to workers.
Row accessors verify the row's checksum on the reader's first access to that row (format 2 shards);
`image_spans` is the raw batched path: its callers (the loader) call `verify_rows` themselves.
"""
from __future__ import annotations

import json
import os
import posixpath
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from textsynth.errors import CorruptShardError, RowChecksumError
from textsynth.sample import IMAGE_KEYS, Sample
from textsynth.shards import storage
from textsynth.shards.checksum import FIELDS, rows_checksums
from textsynth.shards.encodings import Codec, get_codec
from textsynth.shards.schema import CHECKSUM_COLUMN, ShardLayout, parse_identity, parse_schema

EOS_MARKER = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # Arrow IPC end-of-stream: continuation + zero length
_SPAN_COLUMNS: tuple[str, ...] = FIELDS
_ARROW_ERRORS = (pa.ArrowException, EOFError, ValueError, OSError)


class RowMeta(NamedTuple):
    """The scalar columns of one row, readable without decoding any image."""

    id: str
    text_s: str
    text_t: str
    height: int
    width: int


@dataclass(frozen=True)
class _Spans:
    """Absolute byte ranges of one variable-size column's values inside `base`."""

    base: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


@dataclass(frozen=True)
class _Opened:
    """Everything an open shard holds; dropped on pickling and rebuilt lazily."""

    keepalive: Any
    layout: ShardLayout
    codec: Codec
    rows: int
    heights: np.ndarray
    widths: np.ndarray
    spans: dict[str, _Spans]
    checksums: np.ndarray | None  # stored per-row checksums (None: format 1 shard, unverifiable)
    checked: np.ndarray  # rows whose checksum this mapping has verified
    caches: dict[str, Any] = field(default_factory=dict)  # see ShardReader.mapping_cache


def _payload(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The bytes of an image column: the `bytes` child of HF's Image struct (png/jpeg), else the column."""
    if not pa.types.is_struct(column.type):
        return column
    return pa.chunked_array([chunk.field("bytes") for chunk in column.chunks], pa.binary())


def _column_spans(column: pa.ChunkedArray, base: np.ndarray, base_addr: int) -> _Spans:
    """Index a binary/string column as (start, end) offsets into `base`, zero-copy when possible."""
    starts, ends, inside = [], [], True
    chunk_data = []
    for chunk in column.chunks:
        _, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int32)[chunk.offset: chunk.offset + len(chunk) + 1]
        offsets = offsets.astype(np.int64)
        data_addr = data_buf.address if data_buf is not None and data_buf.size else base_addr
        data_size = data_buf.size if data_buf is not None else 0
        rel = data_addr - base_addr
        inside = inside and 0 <= rel and rel + data_size <= base.size
        starts.append(offsets[:-1] + rel)
        ends.append(offsets[1:] + rel)
        chunk_data.append((data_buf, offsets))
    if inside:
        return _Spans(base, _cat(starts), _cat(ends))
    # A buffer lives outside the mapped file (pyarrow copied it): fall back to one packed copy.
    pieces, new_starts, new_ends, pos = [], [], [], 0
    for data_buf, offsets in chunk_data:
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        piece = data[offsets[0]: offsets[-1]]
        new_starts.append(offsets[:-1] - offsets[0] + pos)
        new_ends.append(offsets[1:] - offsets[0] + pos)
        pieces.append(piece)
        pos += piece.size
    packed = np.concatenate(pieces) if pieces else np.empty(0, np.uint8)
    return _Spans(packed, _cat(new_starts), _cat(new_ends))


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    out = np.concatenate(parts) if parts else np.empty(0, np.int64)
    out.setflags(write=False)
    return out


class ShardReader:
    """Random access to the rows of one shard: `len`, `[i] -> Sample`, `row_meta`, `image_bytes`."""

    def __init__(self, path: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None) -> None:
        self._fs, self.path = storage.locate(path, filesystem)
        self.name = posixpath.basename(self.path.replace(os.sep, "/"))
        self._opened: _Opened | None = None

    # --- opening -------------------------------------------------------------------------------

    def _read_source(self) -> tuple[Any, pa.Buffer]:
        try:
            if storage.is_local(self._fs):
                mapped = pa.memory_map(self.path, "r")
                return mapped, mapped.read_buffer()
            with self._fs.open_input_file(self.path) as f:
                buf = f.read_buffer()
            return buf, buf
        except FileNotFoundError as exc:
            raise CorruptShardError(f"{self.path}: shard file is missing") from exc

    def _corrupt(self, why: str) -> CorruptShardError:
        return CorruptShardError(f"{self.path}: corrupt or truncated shard: {why}")

    def _open(self) -> _Opened:
        keepalive, buf = self._read_source()
        if buf.size < len(EOS_MARKER) or buf[buf.size - len(EOS_MARKER):].to_pybytes() != EOS_MARKER:
            raise self._corrupt("missing Arrow end-of-stream marker (file cut short?)")
        try:
            reader = pa.ipc.open_stream(buf)
            table = reader.read_all()
        except _ARROW_ERRORS as exc:
            raise self._corrupt(f"{type(exc).__name__}: {exc}") from exc
        layout = parse_schema(table.schema, self.path)
        try:
            table.validate(full=True)
        except _ARROW_ERRORS as exc:
            raise self._corrupt(f"invalid Arrow data: {exc}") from exc
        columns = {name: _payload(table.column(name)) for name in table.column_names}
        nulls = [name for name, col in columns.items() if col.null_count]
        if nulls:
            raise self._corrupt(f"null values in column(s) {', '.join(nulls)}")
        heights = table.column("height").to_numpy().astype(np.int32, copy=False)
        widths = table.column("width").to_numpy().astype(np.int32, copy=False)
        if heights.size and (heights.min() <= 0 or widths.min() <= 0):
            raise self._corrupt("non-positive image height or width")
        heights.setflags(write=False)
        widths.setflags(write=False)
        base = np.frombuffer(buf, dtype=np.uint8)
        spans = {name: _column_spans(columns[name], base, buf.address) for name in _SPAN_COLUMNS}
        checksums = None
        if layout.checksums:
            checksums = table.column(CHECKSUM_COLUMN).to_numpy().astype(np.uint64, copy=False)
            checksums.setflags(write=False)
        else:
            warnings.warn(f"{self.path}: shard format {layout.format_version} has no row checksums; its rows "
                          "are read unverified (regenerate the dataset to add them)", RuntimeWarning, stacklevel=3)
        return _Opened(keepalive=(keepalive, buf), layout=layout, codec=get_codec(layout.encoding),
                       rows=table.num_rows, heights=heights, widths=widths, spans=spans, checksums=checksums,
                       checked=np.zeros(table.num_rows, dtype=bool))

    @property
    def _state(self) -> _Opened:
        if self._opened is None:
            self._opened = self._open()
        return self._opened

    def open(self) -> ShardReader:
        """Open (map and index) the shard now instead of on first access; returns self."""
        _ = self._state
        return self

    def close(self) -> None:
        """Drop the mapping and indexes; the reader reopens on next access."""
        self._opened = None

    def __enter__(self) -> ShardReader:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"_fs": self._fs, "path": self.path, "name": self.name, "_opened": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # --- whole-shard views ---------------------------------------------------------------------

    @property
    def layout(self) -> ShardLayout:
        """The parsed b"textsynth" schema metadata."""
        return self._state.layout

    @property
    def identity(self) -> dict[str, Any] | None:
        """The shard's identity {"fingerprint", "index", "total"} from its metadata, None if it has none."""
        return self._state.layout.identity

    @property
    def has_checksums(self) -> bool:
        """Whether the rows carry checksums (format 2); format 1 shards read unverified."""
        return self._state.checksums is not None

    def verify_rows(self, rows: Any, always: bool = False) -> None:
        """Check the stored checksum of `rows` (those not yet verified in this mapping, or all if `always`).

        RowChecksumError names the file, the first bad row and its id; a format 1 shard checks nothing.
        """
        st = self._state
        if st.checksums is None:
            return
        rows = np.atleast_1d(np.asarray(rows, np.int64))
        if not always:
            rows = rows[~st.checked[rows]]
        if rows.size == 0:
            return
        got = rows_checksums(st.spans, st.heights, st.widths, rows)
        bad = np.flatnonzero(got != st.checksums[rows])
        if bad.size:
            j = int(rows[bad[0]])
            try:
                sid = repr(self._text("id", j))
            except UnicodeDecodeError:
                sid = "(id not UTF-8)"
            more = f" (and {bad.size - 1} more row(s) of this batch)" if bad.size > 1 else ""
            raise RowChecksumError(f"{self.path}: row {j} (id {sid}) fails its checksum: stored "
                                   f"{int(st.checksums[j]):016x}, computed {int(got[bad[0]]):016x}; "
                                   f"an image, text or meta of this row is corrupt{more}")
        st.checked[rows] = True

    def _verified(self, i: int) -> int:
        j = self._row(i)
        st = self._state
        if st.checksums is not None and not st.checked[j]:
            self.verify_rows([j])
        return j

    def mapping_cache(self, name: str, make: Callable[[], Any]) -> Any:
        """A value tied to the current mapping: built by make() on first use, dropped with the mapping.

        Shards are immutable once in place, so facts a reader learns about the mapped bytes (the loader's
        per-row record of LZ4 frames it verified) hold until the shard is closed or reopened, never longer.
        """
        caches = self._state.caches
        value = caches.get(name)
        if value is None:
            value = caches[name] = make()
        return value

    @property
    def encoding(self) -> str:
        """The dataset encoding of this shard's images."""
        return self._state.layout.encoding

    @property
    def heights(self) -> np.ndarray:
        """Read-only int32 array of every row's image height."""
        return self._state.heights

    @property
    def widths(self) -> np.ndarray:
        """Read-only int32 array of every row's image width."""
        return self._state.widths

    def __len__(self) -> int:
        return self._state.rows

    def __repr__(self) -> str:
        return f"ShardReader({self.path!r})"

    # --- rows ----------------------------------------------------------------------------------

    def _row(self, i: int) -> int:
        n = self._state.rows
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"row {i} out of range for {self.name} with {n} rows")
        return j

    def _text(self, column: str, j: int) -> str:
        s = self._state.spans[column]
        return bytes(s.base[s.starts[j]:s.ends[j]]).decode("utf-8")

    def image_bytes(self, i: int, key: str, verify: bool = True) -> np.ndarray:
        """Zero-copy read-only uint8 view of row i's encoded image `key` (valid while the reader is open)."""
        s = self._state.spans[key]
        j = self._verified(i) if verify else self._row(i)
        return s.base[s.starts[j]:s.ends[j]]

    def image_spans(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(base, starts, ends): row i's encoded `key` is base[starts[i]:ends[i]]; for batched loaders."""
        if key not in IMAGE_KEYS:
            raise KeyError(f"unknown image key {key!r}")
        s = self._state.spans[key]
        return s.base, s.starts, s.ends

    def decode_image(self, i: int, key: str, verify: bool = True) -> np.ndarray:
        """Decode row i's image `key` to (H, W[, 3]) uint8; CorruptShardError names file, row and key."""
        j = self._verified(i) if verify else self._row(i)
        st = self._state
        if key not in IMAGE_KEYS:
            raise KeyError(f"unknown image key {key!r}")
        try:
            return st.codec.decode(key, self.image_bytes(j, key, verify=False), int(st.heights[j]), int(st.widths[j]))
        except CorruptShardError as exc:
            raise CorruptShardError(f"{self.path}: row {j} image {key!r}: {exc}") from exc

    def row_meta(self, i: int, verify: bool = True) -> RowMeta:
        """id, texts and size of row i without decoding images or meta JSON (verify=False: row not checked)."""
        j = self._verified(i) if verify else self._row(i)
        st = self._state
        try:
            return RowMeta(self._text("id", j), self._text("text_s", j), self._text("text_t", j),
                           int(st.heights[j]), int(st.widths[j]))
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"row {j}: text is not UTF-8: {exc}") from exc

    def meta(self, i: int, verify: bool = True) -> dict[str, Any]:
        """The full Sample.meta of row i, parsed from its JSON column."""
        j = self._verified(i) if verify else self._row(i)
        try:
            value = json.loads(self._text("meta", j))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._corrupt(f"row {j}: meta is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise self._corrupt(f"row {j}: meta JSON is a {type(value).__name__}, not an object")
        return value

    def __getitem__(self, i: int) -> Sample:
        j = self._verified(i)
        images = {key: self.decode_image(j, key, verify=False) for key in IMAGE_KEYS}
        return Sample(images=images, meta=self.meta(j, verify=False))

    def __iter__(self) -> Iterator[Sample]:
        for j in range(len(self)):
            yield self[j]


def read_shard_sizes(fs: pafs.FileSystem, path: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """(widths, heights, identity) of one shard without validating or indexing its image columns (a cheap
    pass for samplers); CorruptShardError names a missing, corrupt or truncated file."""
    try:
        if storage.is_local(fs):
            with pa.memory_map(path, "r") as f:
                table = pa.ipc.open_stream(f).read_all()
        else:
            with fs.open_input_file(path) as f:
                table = pa.ipc.open_stream(f).read_all()
        w = table.column("width").to_numpy().astype(np.int32)
        h = table.column("height").to_numpy().astype(np.int32)
        identity = parse_identity(table.schema, path)
    except FileNotFoundError as exc:
        raise CorruptShardError(f"{path}: shard file is missing") from exc
    except (pa.ArrowException, OSError, EOFError, ValueError, KeyError) as exc:
        raise CorruptShardError(f"{path}: corrupt or truncated shard: {type(exc).__name__}: {exc}") from exc
    return w, h, identity

