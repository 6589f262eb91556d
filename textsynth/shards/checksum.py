"""Per-row checksums: XXH3-64 of everything a row stores, so a flipped bit anywhere in it is caught on read.

The digest covers, in order: a header of little-endian int64s (height, width, then the byte length of
each of id, text_s, text_t, the eight encoded images and meta) followed by those fields' stored bytes.
XXH3 hashes ~25 GB/s (zlib.crc32 ~2.4 GB/s here), so checking a row costs a few microseconds.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import xxhash

from textsynth.sample import IMAGE_KEYS

FIELDS: tuple[str, ...] = ("id", "text_s", "text_t", *IMAGE_KEYS, "meta")


def row_checksum(height: int, width: int, fields: Sequence[bytes]) -> int:
    """Checksum of one row from its size and its FIELDS' stored bytes (in FIELDS order), as the writer stores it."""
    header = np.array([height, width, *(len(f) for f in fields)], "<i8")
    digest = xxhash.xxh3_64(header.tobytes())
    for f in fields:
        digest.update(f)
    return digest.intdigest()


def rows_checksums(spans: dict[str, Any], heights: np.ndarray, widths: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Checksums (uint64) of `rows` of an open shard: `spans[field]` has .base/.starts/.ends (reader indexes)."""
    rows = np.asarray(rows, np.int64)
    n = rows.size
    header = np.empty((n, 2 + len(FIELDS)), "<i8")
    header[:, 0] = heights[rows]
    header[:, 1] = widths[rows]
    cols = []
    for c, name in enumerate(FIELDS):
        s = spans[name]
        st = s.starts[rows]
        header[:, 2 + c] = s.ends[rows] - st
        cols.append((memoryview(s.base), st.tolist(), header[:, 2 + c].tolist()))
    raw = memoryview(header).cast("B")
    step = header.shape[1] * 8
    out = np.empty(n, np.uint64)
    new = xxhash.xxh3_64
    for b in range(n):
        digest = new(raw[b * step:(b + 1) * step])
        for base, st, ln in cols:
            s0 = st[b]
            digest.update(base[s0:s0 + ln[b]])
        out[b] = digest.intdigest()
    return out
