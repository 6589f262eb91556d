"""Ray Data reader over a textsynth dataset: one read task per shard (or group of shards), images decoded.

`read_textsynth(path)` returns a `ray.data.Dataset` whose rows hold id, text_s, text_t, height,
width, meta and the image columns as uint8 arrays, (H, W, 3) / (H, W) with per-row shapes (Ray's
variable-shaped tensor columns); `decode=False` keeps the encoded bytes instead.
"""
from __future__ import annotations

import json
from typing import Any, Iterator, Sequence

import numpy as np

from ..sample import IMAGE_KEYS
from ..shards import storage
from ..shards.dataset import read_manifest
from ..shards.reader import ShardReader

SCALARS = ("id", "text_s", "text_t", "height", "width", "meta")
ROWS_PER_BLOCK = 256


def _check_keys(keys: Sequence[str]) -> tuple[str, ...]:
    unknown = [k for k in keys if k not in IMAGE_KEYS]
    if unknown:
        raise ValueError(f"unknown image key(s) {unknown}; expected a subset of {IMAGE_KEYS}")
    return tuple(keys)


def shard_blocks(path: str, fs: Any, keys: Sequence[str], decode: bool,
                 rows_per_block: int = ROWS_PER_BLOCK) -> Iterator[dict[str, np.ndarray]]:
    """Column batches (dict of numpy arrays) of one shard, `rows_per_block` rows at a time."""
    with ShardReader(path, fs) as reader:
        n = len(reader)
        for lo in range(0, n, rows_per_block):
            rows = range(lo, min(n, lo + rows_per_block))
            metas = [reader.row_meta(j) for j in rows]
            batch: dict[str, np.ndarray] = {
                "id": np.array([m.id for m in metas], dtype=object),
                "text_s": np.array([m.text_s for m in metas], dtype=object),
                "text_t": np.array([m.text_t for m in metas], dtype=object),
                "height": np.array([m.height for m in metas], dtype=np.int32),
                "width": np.array([m.width for m in metas], dtype=np.int32),
                "meta": np.array([json.dumps(reader.meta(j), ensure_ascii=False, separators=(",", ":"))
                                  for j in rows], dtype=object),
            }
            for key in keys:
                cells = np.empty(len(rows), dtype=object)
                for i, j in enumerate(rows):
                    cells[i] = reader.decode_image(j, key) if decode else bytes(reader.image_bytes(j, key))
                batch[key] = cells
            yield batch


def datasource_class():
    """The `ray.data.Datasource` subclass (built on first use so importing textsynth never imports Ray)."""
    from ray.data.block import BlockAccessor, BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class TextsynthDatasource(Datasource):
        """Read tasks over the shards of a textsynth dataset folder (local or object storage)."""

        def __init__(self, path: str, keys: Sequence[str] = IMAGE_KEYS, decode: bool = True,
                     filesystem: Any = None, storage_options: dict | None = None) -> None:
            super().__init__()
            self._fs, root = storage.locate(path, filesystem, storage_options)
            manifest = read_manifest(self._fs, root)
            self._shards = [(storage.join(root, e["file"]), int(e["rows"]), int(e["bytes"]))
                            for e in manifest["shards"]]
            self._keys, self._decode = _check_keys(keys), decode
            self._expand = 3 if decode and manifest["encoding"] != "raw" else 1  # decoded images are larger

        def estimate_inmemory_data_size(self) -> int:
            return sum(b for _, _, b in self._shards) * self._expand

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list:
            groups = np.array_split(np.arange(len(self._shards)), max(1, min(parallelism, len(self._shards))))
            tasks = []
            for group in groups:
                shards = [self._shards[i] for i in group]
                fs, keys, decode = self._fs, self._keys, self._decode

                def read(shards=shards, fs=fs, keys=keys, decode=decode):
                    for path, _, _ in shards:
                        for batch in shard_blocks(path, fs, keys, decode):
                            yield BlockAccessor.batch_to_block(batch)

                meta = BlockMetadata(num_rows=sum(r for _, r, _ in shards),
                                     size_bytes=sum(b for _, _, b in shards) * self._expand,
                                     input_files=[p for p, _, _ in shards], exec_stats=None)
                tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
            return tasks

    return TextsynthDatasource


def read_textsynth(path: str, keys: Sequence[str] = IMAGE_KEYS, decode: bool = True, *, filesystem: Any = None,
                   storage_options: dict | None = None, **read_args: Any) -> Any:
    """A `ray.data.Dataset` over the dataset at `path`, parallel by shard (extra args go to read_datasource)."""
    import ray.data

    source = datasource_class()(path, keys, decode, filesystem, storage_options)
    read_args.setdefault("override_num_blocks", len(source._shards))
    return ray.data.read_datasource(source, **read_args)
