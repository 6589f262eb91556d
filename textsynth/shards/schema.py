"""The one Arrow schema of a shard, with the logical layout stored as JSON under b"textsynth".

Format 2 adds a `checksum` column (uint64 XXH3-64 of the row, see checksum.py) and may carry the
shard's identity (dataset fingerprint, index, total) as JSON under b"textsynth.shard". Format 1
shards (no checksum column) are still read, with a warning, as unverifiable.

The b"huggingface" entry declares the same columns as HF `datasets` features, so HF reads the
shards with exactly the features that dataset_info.json lists. PNG/JPEG images are stored the way HF
stores `datasets.Image()` (struct<bytes, path>, path null), so they open as images in HF with no
cast; raw/LZ4 images are plain binary (HF has no feature that decodes them: see textsynth.hf). Fields are nullable, as HF declares
them (a differing schema makes HF cast every table on load); readers reject nulls instead.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from textsynth.errors import ShardSchemaError
from textsynth.sample import IMAGE_CHANNELS, IMAGE_KEYS
from textsynth.shards.encodings import ENCODINGS, check_encoding, image_encoding

FORMAT_VERSION = 2  # 2: per-row checksum column; 1: none (read with a warning)
SUPPORTED_FORMAT_VERSIONS = (1, 2)
METADATA_KEY = b"textsynth"
SHARD_IDENTITY_KEY = b"textsynth.shard"
HF_METADATA_KEY = b"huggingface"
CHECKSUM_COLUMN = "checksum"

SCALAR_FIELDS: tuple[pa.Field, ...] = (
    pa.field("id", pa.string()),
    pa.field("text_s", pa.string()),
    pa.field("text_t", pa.string()),
    pa.field("height", pa.int32()),
    pa.field("width", pa.int32()),
)
META_FIELD = pa.field("meta", pa.string())
CHECKSUM_FIELD = pa.field(CHECKSUM_COLUMN, pa.uint64())

_HF_DTYPES = {pa.string(): "string", pa.int32(): "int32", pa.binary(): "binary", pa.uint64(): "uint64"}
_IDENTITY_KEYS = {"fingerprint": str, "index": int, "total": int}
# HF's datasets.Image() storage type; used for the image columns of self-describing (png/jpeg) encodings
IMAGE_STRUCT = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
STRUCT_ENCODINGS = ("png", "jpeg")


@dataclass(frozen=True)
class ShardLayout:
    """What a shard's metadata says about it: format version, dataset encoding, per-image codec."""

    format_version: int
    encoding: str
    images: dict[str, dict[str, Any]]
    identity: dict[str, Any] | None = None  # {"fingerprint", "index", "total"} when the writer was given one

    @property
    def checksums(self) -> bool:
        """Whether rows carry a checksum column (format 2 and later)."""
        return self.format_version >= 2


def check_identity(identity: Any, source: str = "identity") -> dict[str, Any]:
    """Validate a shard identity {"fingerprint": str, "index": int, "total": int}; ValueError naming the fault."""
    if not isinstance(identity, dict) or set(identity) != set(_IDENTITY_KEYS):
        raise ValueError(f"{source}: shard identity must be a dict with keys {sorted(_IDENTITY_KEYS)}, got {identity!r}")
    for key, kind in _IDENTITY_KEYS.items():
        value = identity[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{source}: shard identity {key!r} must be {kind.__name__}, got {value!r}")
    if not identity["fingerprint"] or not 0 <= identity["index"] < identity["total"]:
        raise ValueError(f"{source}: shard identity needs a fingerprint and 0 <= index < total, got {identity!r}")
    return identity


def encode_identity(identity: dict[str, Any]) -> bytes:
    """The bytes stored under b"textsynth.shard" (compact, sorted keys)."""
    return json.dumps(check_identity(identity), sort_keys=True, separators=(",", ":")).encode()


def logical_schema(encoding: str, version: int = FORMAT_VERSION) -> dict[str, Any]:
    """The JSON stored under b"textsynth": format version, encoding, and channels/codec per image."""
    check_encoding(encoding)
    return {
        "format_version": version,
        "encoding": encoding,
        "images": {k: {"channels": IMAGE_CHANNELS[k], "encoding": image_encoding(encoding, k)} for k in IMAGE_KEYS},
    }


def image_type(encoding: str) -> pa.DataType:
    """Arrow type of the image columns: HF's Image struct for png/jpeg, plain binary otherwise."""
    return IMAGE_STRUCT if check_encoding(encoding) in STRUCT_ENCODINGS else pa.binary()


def _fields(encoding: str, version: int = FORMAT_VERSION) -> list[pa.Field]:
    images = [pa.field(k, image_type(encoding)) for k in IMAGE_KEYS]
    return [*SCALAR_FIELDS, *images, META_FIELD] + ([CHECKSUM_FIELD] if version >= 2 else [])


def hf_features(schema: pa.Schema) -> dict[str, dict[str, str]]:
    """HF `datasets` features (Value dtypes, Image for HF's image struct) for the columns of `schema`."""
    out = {}
    for f in schema:
        if f.type == IMAGE_STRUCT:
            out[f.name] = {"_type": "Image"}
            continue
        if f.type not in _HF_DTYPES:
            raise ValueError(f"column {f.name!r} has type {f.type} with no HF Value dtype")
        out[f.name] = {"dtype": _HF_DTYPES[f.type], "_type": "Value"}
    return out


def build_schema(encoding: str, identity: dict[str, Any] | None = None,
                 version: int = FORMAT_VERSION) -> pa.Schema:
    """The Arrow schema of a shard whose images use `encoding` (ValueError naming an unknown one),
    with the shard's identity under b"textsynth.shard" when given. `version` 1 is for tests of old shards."""
    bare = pa.schema(_fields(encoding, version))
    metadata = {
        METADATA_KEY: json.dumps(logical_schema(encoding, version), sort_keys=True).encode(),
        HF_METADATA_KEY: json.dumps({"info": {"features": hf_features(bare)}}).encode(),
    }
    if identity is not None:
        metadata[SHARD_IDENTITY_KEY] = encode_identity(identity)
    return bare.with_metadata(metadata)


def parse_identity(schema: pa.Schema, source: str) -> dict[str, Any] | None:
    """The shard identity stored in `schema`'s metadata, None if absent; ShardSchemaError if malformed."""
    raw = (schema.metadata or {}).get(SHARD_IDENTITY_KEY)
    if raw is None:
        return None
    try:
        return check_identity(json.loads(raw), source)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ShardSchemaError(f"{source}: unreadable {SHARD_IDENTITY_KEY.decode()!r} metadata: {exc}") from exc


def parse_schema(schema: pa.Schema, source: str) -> ShardLayout:
    """Validate a schema read back from shard `source`; ShardSchemaError naming it on any mismatch."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ShardSchemaError(f"{source}: schema has no {METADATA_KEY.decode()!r} metadata")
    try:
        meta = json.loads(raw)
        version, encoding, images = meta["format_version"], meta["encoding"], meta["images"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardSchemaError(f"{source}: unreadable {METADATA_KEY.decode()!r} metadata: {exc}") from exc
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ShardSchemaError(f"{source}: format_version {version!r}, this reader supports "
                               f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}")
    if encoding not in ENCODINGS:
        raise ShardSchemaError(f"{source}: unknown encoding {encoding!r}")
    expected = build_schema(encoding, version=version)
    got = [(f.name, f.type) for f in schema]
    want = [(f.name, f.type) for f in expected]
    legacy = [(f.name, f.type) for f in _fields("raw", version)]  # png/jpeg shards written before the Image struct
    if got != want and not (encoding in STRUCT_ENCODINGS and got == legacy):
        raise ShardSchemaError(f"{source}: columns {got} differ from the expected {want}")
    if meta != logical_schema(encoding, version):
        raise ShardSchemaError(f"{source}: image layout {images} differs from the expected one for {encoding!r}")
    return ShardLayout(format_version=version, encoding=encoding, images=images,
                       identity=parse_identity(schema, source))
