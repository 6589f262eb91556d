"""Render a recipe into a dataset folder from one process (no Ray): small datasets for benchmarks and tests.

`textsynth generate` writes datasets through Ray; benchmarks, tests and examples of the loader only
need a folder of real rendered samples in the same layout, which this writes from one process:
`data-XXXXX-of-NNNNN.arrow` shards via ShardWriter, then `write_dataset_metadata` (the manifest last).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textsynth import atomic
from textsynth.shards.dataset import shard_name, write_dataset_metadata
from textsynth.shards.writer import ShardInfo, write_shard


def make_synthesizer(pipeline: str = "smoke", seed: int = 0, height: int | None = None):
    """A Synthesizer for a named recipe (height overrides render.height when given)."""
    from textsynth import recipes
    from textsynth.synth.synthesizer import Synthesizer

    cfg = recipes.load(None, pipeline, seed)
    if height is not None:
        cfg = cfg.replace(**{"render.height": height})
    return Synthesizer(cfg)


def shard_ranges(n: int, shards: int) -> list[range]:
    """Split sample indices 0..n-1 into `shards` contiguous, nearly equal ranges."""
    if shards < 1 or n < shards:
        raise ValueError(f"need 1 <= shards <= n, got shards={shards}, n={n}")
    bounds = [n * k // shards for k in range(shards + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(shards)]


def write_shard_file(root: str | os.PathLike[str], index: int, total: int, indices: Iterable[int],
                     synth, encoding: str = "lz4", fingerprint: str | None = None) -> ShardInfo:
    """Render `indices` with `synth` into shard `index` of `total` under root (atomic rename on close);
    with `fingerprint` the shard carries its identity {fingerprint, index, total}."""
    identity = None if fingerprint is None else {"fingerprint": fingerprint, "index": index, "total": total}
    return write_shard(Path(root) / shard_name(index, total), (synth.sample(int(i)) for i in indices), encoding,
                       identity=identity)


def build_dataset(root: str | os.PathLike[str], n: int, shards: int = 4, encoding: str = "lz4",
                  pipeline: str = "smoke", seed: int = 0, height: int | None = None,
                  on_shard: Callable[[ShardInfo], Any] | None = None, finish: bool = True,
                  synth=None, fingerprint: str | None = None) -> list[ShardInfo]:
    """Render samples 0..n-1 of `pipeline` into `shards` shards under root, then the metadata.

    With finish=False the manifest is not written (a dataset "still being generated"). With
    `fingerprint`, shards carry their identity and the manifest the fingerprint (as generate writes them).
    `on_shard(info)` is called after each shard lands (streaming tests pace the writer with it).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    synth = synth or make_synthesizer(pipeline, seed, height)
    infos = []
    for k, rng in enumerate(shard_ranges(n, shards)):
        info = write_shard_file(root, k, shards, rng, synth, encoding, fingerprint)
        infos.append(info)
        if on_shard is not None:
            on_shard(info)
    if finish:
        extra = {} if fingerprint is None else {"fingerprint": fingerprint}
        write_dataset_metadata(None, str(root), encoding, infos, seed=seed, pipeline=pipeline, **extra)
    return infos


def cached_dataset(n: int = 2000, shards: int = 8, encoding: str = "lz4", pipeline: str = "smoke",
                   seed: int = 0, height: int | None = None, cache_dir: str | None = None) -> str:
    """Path of a dataset of n rendered samples, built once and reused from a cache folder under /tmp."""
    base = Path(cache_dir or os.environ.get("TEXTSYNTH_CACHE", "/tmp/textsynth-cache"))
    name = f"{pipeline}-n{n}-s{shards}-{encoding}-seed{seed}-h{height or 'cfg'}"
    root = base / name
    if (root / "textsynth.json").is_file():
        return str(root)
    tmp = base / f".{name}.building-{os.getpid()}-{int(time.time())}"
    try:
        build_dataset(tmp, n, shards, encoding, pipeline, seed, height)
        try:
            atomic.commit(tmp, root, replace=False)
        except OSError:  # someone else finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(root)

