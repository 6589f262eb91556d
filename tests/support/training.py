"""What the trainer tests share: a tiny CPU config, the trainer without VGG19, small datasets, one-line refusals."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from textsynth.local_dataset import build_dataset
from textsynth.srnet.losses import LossConfig
from textsynth.srnet.model import SRNetConfig
from textsynth.srnet.train import TrainConfig
from textsynth.srnet.train import train as _train

CLI = str(Path(sys.executable).parent / "textsynth")


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to n for the block, restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def tiny(**kw) -> TrainConfig:
    """A width-0.125 SRNet on CPU, batch 4, logging every step, nothing else unless asked."""
    base = dict(model=SRNetConfig(width=0.125), loss=LossConfig(g_every=1), batch_size=4, num_workers=0,
                device="cpu", log_every=1, ckpt_every=1000, sample_every=1000, val_every=1000, steps=1000,
                grid_samples=2, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def train(*args, **kw):
    """The trainer without VGG19 (no ImageNet weights on a test machine): --no-perceptual."""
    return _train(*args, perceptual=False, **kw)


def small_dataset(tmp_path_factory, name: str, count: int = 48, shards: int = 2) -> str:
    """A small `smoke` dataset built once per test module."""
    root = tmp_path_factory.mktemp(name) / "ds"
    build_dataset(root, count, shards=shards, pipeline="smoke", seed=4)
    return str(root)


def refused_lines(dataset: str, run: Path, *args: str, cli: tuple[str, ...] = (CLI,)) -> list[str]:
    """stderr lines of a `textsynth train` that must fail before creating its run folder (`cli`: the
    command that runs textsynth)."""
    r = subprocess.run([*cli, "train", dataset, "--out", str(run), *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and not run.exists(), r.stdout + r.stderr
    return r.stderr.strip().splitlines()
