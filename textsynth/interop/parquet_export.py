"""`export --format parquet`: one Parquet file per shard for pyarrow.dataset, polars, DuckDB and the HF Hub.

Each image column is HF's Image struct {bytes, path=null} holding a standard PNG (PNG/JPEG datasets
keep their bytes as they are; raw/LZ4 images are encoded to PNG), and the schema carries HF's
feature metadata, so `load_dataset("parquet", ...)` and the Hub viewer show images. Files are written
atomically; a rerun skips shards whose Parquet file is already complete.
"""
from __future__ import annotations

import json
import posixpath
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from ..sample import IMAGE_KEYS
from ..shards import storage
from ..shards.dataset import read_manifest
from ..shards.encodings import get_codec
from ..shards.reader import ShardReader
from ..shards.schema import IMAGE_STRUCT, SCALAR_FIELDS

META_FIELD = pa.field("meta", pa.string())


def parquet_schema() -> pa.Schema:
    """Scalars, eight image structs, meta; with HF features so HF tools see image columns."""
    fields = [*SCALAR_FIELDS, *(pa.field(k, IMAGE_STRUCT) for k in IMAGE_KEYS), META_FIELD]
    features = {f.name: ({"_type": "Image"} if f.type == IMAGE_STRUCT else {"dtype": str(f.type), "_type": "Value"})
                for f in fields}
    return pa.schema(fields, metadata={b"huggingface": json.dumps({"info": {"features": features}}).encode()})


def parquet_name(arrow_name: str) -> str:
    return arrow_name[: -len(".arrow")] + ".parquet" if arrow_name.endswith(".arrow") else arrow_name + ".parquet"


def shard_table(reader: ShardReader) -> pa.Table:
    """One shard as a table of the Parquet schema (PNG bytes, decoded and re-encoded only for raw/LZ4)."""
    png = get_codec("png")
    keep = reader.encoding in ("png", "jpeg")
    n = len(reader)
    metas = [reader.row_meta(j) for j in range(n)]
    cols: dict[str, pa.Array] = {
        "id": pa.array([m.id for m in metas], pa.string()),
        "text_s": pa.array([m.text_s for m in metas], pa.string()),
        "text_t": pa.array([m.text_t for m in metas], pa.string()),
        "height": pa.array([m.height for m in metas], pa.int32()),
        "width": pa.array([m.width for m in metas], pa.int32()),
    }
    for key in IMAGE_KEYS:
        data = [bytes(reader.image_bytes(j, key)) if keep else png.encode(key, reader.decode_image(j, key))
                for j in range(n)]
        cols[key] = pa.StructArray.from_arrays([pa.array(data, pa.binary()), pa.nulls(n, pa.string())],
                                               fields=list(IMAGE_STRUCT))
    cols["meta"] = pa.array([json.dumps(reader.meta(j), ensure_ascii=False, separators=(",", ":"))
                             for j in range(n)], pa.string())
    return pa.Table.from_arrays(list(cols.values()), schema=parquet_schema())


def _complete(fs, path: str, rows: int) -> bool:
    if storage.file_size(fs, path) is None:
        return False
    try:
        with fs.open_input_file(path) as f:
            return pq.ParquetFile(f).metadata.num_rows == rows
    except (pa.ArrowException, OSError):
        return False


def export_parquet(root: str, out: str, progress: Callable[[int], None] | None = None) -> int:
    """Write every shard of `root` as OUT/data-XXXXX-of-NNNNN.parquet; returns the rows in OUT."""
    fs, src = storage.locate(root)
    ofs, dst = storage.locate(out)
    manifest = read_manifest(fs, src)
    storage.ensure_dir(ofs, dst)
    total = 0
    for entry in manifest["shards"]:
        target = storage.join(dst, parquet_name(posixpath.basename(entry["file"])))
        if not _complete(ofs, target, int(entry["rows"])):
            with ShardReader(storage.join(src, entry["file"]), fs) as reader:
                table = shard_table(reader)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd", row_group_size=1024)
            storage.atomic_write_bytes(ofs, target, sink.getvalue().to_pybytes())
        total += int(entry["rows"])
        if progress:
            progress(int(entry["rows"]))
    return total
