"""Helpers shared by the import/export tests: a CLI runner and small SRNet folders and datasets."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from textsynth.local_dataset import make_synthesizer, shard_ranges, write_shard_file
from textsynth.shards.dataset import write_dataset_metadata

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parents[1] / "fixtures" / "srnet-datagen-sample"


def cli(*args: str, env: dict | None = None, check: bool = False,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `textsynth ARGS` in a fresh interpreter, as a user would; stdout/stderr captured as text."""
    proc = subprocess.run([sys.executable, "-c", "from textsynth.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env={**os.environ, **(env or {})},
                          timeout=300)
    if check and proc.returncode:
        raise AssertionError(f"textsynth {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def srnet_copy(dst: Path, copies: int = 1) -> Path:
    """The reference sample folder, its 8 samples repeated `copies` times (names 000..)."""
    names = sorted(p.name for p in (FIXTURE / "i_s").iterdir())
    for key in [p.name for p in FIXTURE.iterdir() if p.is_dir()]:
        (dst / key).mkdir(parents=True)
        for c in range(copies):
            for i, name in enumerate(names):
                shutil.copyfile(FIXTURE / key / name, dst / key / f"{c * len(names) + i:03d}.png")
    return dst


def small_dataset(root: Path, n: int = 12, shards: int = 3, encoding: str = "lz4", seed: int = 5) -> Path:
    """n rendered smoke samples in `shards` shards, with the recipe recorded (so samples re-render)."""
    synth = make_synthesizer("smoke", seed)
    root.mkdir(parents=True, exist_ok=True)
    infos = [write_shard_file(root, k, shards, rng, synth, encoding) for k, rng in enumerate(shard_ranges(n, shards))]
    write_dataset_metadata(None, str(root), encoding, infos, seed=seed, config=synth.cfg.to_dict(), complete=True)
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
