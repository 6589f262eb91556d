"""Sharded Arrow IPC storage of Samples: codecs, schema, writer, reader and the dataset folder."""
from __future__ import annotations

from textsynth.shards.dataset import (
    Dataset,
    build_manifest,
    read_manifest,
    shard_name,
    verify_dataset,
    verify_shard,
    write_dataset_metadata,
    write_hf_metadata,
    write_manifest_atomic,
)
from textsynth.shards.encodings import ENCODINGS, Codec, decode, encode, get_codec
from textsynth.shards.reader import RowMeta, ShardReader
from textsynth.shards.schema import build_schema, parse_schema
from textsynth.shards.writer import ShardInfo, ShardWriter, write_shard

__all__ = [
    "Codec", "Dataset", "ENCODINGS", "RowMeta", "ShardInfo", "ShardReader", "ShardWriter", "write_shard", "build_manifest",
    "build_schema", "decode", "encode", "get_codec", "parse_schema", "read_manifest", "shard_name",
    "verify_dataset", "verify_shard", "write_dataset_metadata", "write_hf_metadata", "write_manifest_atomic",
]
