"""Hugging Face `datasets` view of a textsynth folder whose images decode to arrays or tensors on access.

`load(path)` opens the folder with `datasets.load_from_disk` (memory-mapped shards, no copy, no cache
files) and sets a transform: indexing or iterating returns decoded uint8 images, numpy (H, W, 3) /
(H, W), or torch (3, H, W) / (1, H, W). PNG/JPEG datasets already open as `datasets.Image()` columns;
this view decodes them with the same codecs as textsynth's own reader, so every encoding reads alike.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..sample import IMAGE_KEYS
from ..shards import storage
from ..shards.dataset import read_manifest
from ..shards.encodings import get_codec

FORMATS = ("numpy", "torch")


def _payload(value: Any) -> Any:
    """The encoded bytes of one cell: bytes (raw/lz4) or HF's Image dict {"bytes", "path"} (png/jpeg)."""
    return value["bytes"] if isinstance(value, dict) else value


def _as_tensor(array: np.ndarray) -> Any:
    import torch

    if not array.flags.writeable:  # lz4/raw decode straight from read-only bytes
        array = array.copy()
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.permute(2, 0, 1) if t.ndim == 3 else t.unsqueeze(0)


def image_transform(encoding: str, keys: Sequence[str] = IMAGE_KEYS, format: str = "numpy") -> Callable:
    """A `set_transform` function decoding image `keys` of a batch (needs its height/width columns)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    unknown = [k for k in keys if k not in IMAGE_KEYS]
    if unknown:
        raise ValueError(f"unknown image key(s) {unknown}; expected a subset of {IMAGE_KEYS}")
    codec = get_codec(encoding)
    convert = _as_tensor if format == "torch" else (lambda a: a)

    def transform(batch: dict[str, list]) -> dict[str, list]:
        out = dict(batch)
        for key in keys:
            if key in batch:
                out[key] = [convert(codec.decode(key, _payload(v), h, w))
                            for v, h, w in zip(batch[key], batch["height"], batch["width"])]
        return out

    return transform


def load(path: str, keys: Sequence[str] = IMAGE_KEYS, format: str = "numpy",
         storage_options: dict[str, Any] | None = None) -> Any:
    """`datasets.load_from_disk(path)` with image columns decoded on access (a transform, no copy).

    `path` may be local or `s3://bucket/prefix` (endpoint and credentials through AWS_* variables or
    fsspec `storage_options`, e.g. {"client_kwargs": {"endpoint_url": "http://host:9000"}}).
    """
    import datasets

    fs, root = storage.locate(path, storage_options=storage_options)
    encoding = read_manifest(fs, root)["encoding"]
    ds = datasets.load_from_disk(path, storage_options=storage_options)
    for key in IMAGE_KEYS:  # PNG/JPEG columns are datasets.Image(): keep their bytes, decode them here
        if isinstance(ds.features.get(key), datasets.Image):
            ds = ds.cast_column(key, datasets.Image(decode=False))
    ds.set_transform(image_transform(encoding, keys, format))
    return ds
