"""The bundled SRNet trainer on CPU with a tiny width: learning, exact resume, safe checkpoints, NaN stop, edit."""
from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from textsynth.local_dataset import build_dataset  # noqa: E402
from textsynth.srnet import checkpoint as ckpt  # noqa: E402
from textsynth.srnet.losses import LossConfig  # noqa: E402
from textsynth.srnet.model import SRNetConfig  # noqa: E402
from textsynth.srnet.train import TrainConfig, TrainingDiverged, train  # noqa: E402

CLI = str(Path(sys.executable).parent / "textsynth")


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("train-ds") / "ds"
    build_dataset(root, 48, shards=2, pipeline="smoke", seed=4)
    return str(root)


def tiny(**kw) -> TrainConfig:
    base = dict(model=SRNetConfig(width=0.125), loss=LossConfig(g_every=1), batch_size=4, num_workers=0,
                device="cpu", log_every=1, ckpt_every=1000, sample_every=1000, val_every=1000, steps=1000,
                grid_samples=2, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_a_few_hundred_steps_reduce_l1_and_dice(small_ds, tmp_path):
    torch.set_num_threads(2)
    train(small_ds, tmp_path / "run", tiny(log_every=10, lr=5e-4), max_steps=300, log=lambda s: None)
    recs = read_log(tmp_path / "run")
    first, last = recs[0], recs[-1]
    assert last["step"] == 300
    assert last["t_l1"] < 0.7 * first["t_l1"], (first["t_l1"], last["t_l1"])
    assert last["f_l1"] < 0.7 * first["f_l1"], (first["f_l1"], last["f_l1"])
    assert last["t_dice"] < first["t_dice"] - 0.05, (first["t_dice"], last["t_dice"])


def test_resume_reproduces_the_uninterrupted_run_exactly(small_ds, tmp_path):
    cfg = tiny(ckpt_every=5)
    train(small_ds, tmp_path / "full", cfg, max_steps=14, log=lambda s: None)
    train(small_ds, tmp_path / "split", cfg, max_steps=5, log=lambda s: None)
    assert ckpt.latest(tmp_path / "split").name == "ckpt-0000005"
    train(small_ds, tmp_path / "split", cfg, max_steps=9, log=lambda s: None)  # crosses an epoch (12 batches)
    drop = {"samples_per_s"}
    full = [{k: v for k, v in r.items() if k not in drop} for r in read_log(tmp_path / "full")]
    split = [{k: v for k, v in r.items() if k not in drop} for r in read_log(tmp_path / "split")]
    assert [r["step"] for r in split] == list(range(1, 15))
    assert split == full  # every loss of steps 6..14 equal to the bit
    a = ckpt.resolve(tmp_path / "full")
    b = ckpt.resolve(tmp_path / "split")
    for name in ("gen", "d_b", "d_f"):
        from safetensors.torch import load_file

        wa, wb = load_file(str(a / f"{name}.safetensors")), load_file(str(b / f"{name}.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_checkpoints_are_complete_and_load_without_pickle(small_ds, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(small_ds, run, tiny(ckpt_every=2, sample_every=2, val_every=2, val_batches=2), val=small_ds, max_steps=4,
          log=lambda s: None)
    vals = [json.loads(x) for x in (run / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in vals] == [2, 4]
    assert all(0 < v["f_l1"] < 1 and 0 < v["f_psnr"] < 60 and -1 <= v["f_ssim"] <= 1 for v in vals)
    c = ckpt.resolve(run)
    assert sorted(p.name for p in c.iterdir()) == ["d_b.safetensors", "d_f.safetensors", "gen.safetensors",
                                                    "optim.safetensors", "rng.safetensors", "state.json"]
    assert (run / "samples" / "step-0000004.png").is_file() and (run / "loss.png").is_file()
    assert not list(run.glob(".ckpt-*"))  # no temp folder left

    def refuse(*a, **k):
        raise AssertionError("a checkpoint load unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    train(small_ds, run, tiny(ckpt_every=2, sample_every=2), max_steps=2, log=lambda s: None)
    assert ckpt.resolve(run).name == "ckpt-0000006"


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(small_ds, tmp_path):
    run = tmp_path / "run"
    train(small_ds, run, tiny(ckpt_every=2), max_steps=2, log=lambda s: None)
    exploding = tiny(ckpt_every=1, loss=LossConfig(g_every=1, bg_l1=1e39, fus_l1=1e39))
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at step 2.*ckpt-0000002"):
        train(small_ds, run, exploding, max_steps=3, log=lambda s: None)
    assert ckpt.resolve(run).name == "ckpt-0000002"


def test_missing_vgg_is_said_once_and_edit_returns_input_size(small_ds, tmp_path):
    run = tmp_path / "run"
    lines: list[str] = []
    train(small_ds, run, tiny(ckpt_every=3), max_steps=3, log=lines.append)
    assert sum("WITHOUT the perceptual and style losses" in s for s in lines) == 1
    crop = tmp_path / "crop.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 151, 3), dtype=np.uint8)).save(crop)
    out = tmp_path / "edited.png"
    r = subprocess.run([CLI, "edit", "--checkpoint", str(run), "--image", str(crop), "--text", "hello",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (151, 37)
    r = subprocess.run([CLI, "edit", "--checkpoint", str(run), "--dataset", small_ds, "--out-dir",
                        str(tmp_path / "many"), "--limit", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "many").glob("*.png"))) == 3


def test_train_config_errors_name_the_key(tmp_path):
    from textsynth.errors import ConfigError

    bad = tmp_path / "t.toml"
    bad.write_text("batch_size = 0\n")
    with pytest.raises(ConfigError, match="train.batch_size"):
        TrainConfig.load(bad)
    bad.write_text("[model]\nwidht = 1\n")
    with pytest.raises(ConfigError, match="widht"):
        TrainConfig.load(bad)
    good = tmp_path / "g.toml"
    good.write_text('steps = 10\n[model]\nwidth = 0.25\n[loss]\ngan = "hinge"\n')
    cfg = TrainConfig.load(good)
    assert cfg.steps == 10 and cfg.model.width == 0.25 and cfg.loss.gan == "hinge"
    assert dataclasses.asdict(cfg)["loss"]["gan"] == "hinge"


def test_torchrun_ddp_two_ranks_on_cpu(small_ds, tmp_path):
    """`torchrun --nproc_per_node 2 textsynth train ...` (gloo on CPU): ranks start from rank 0's weights,
    average gradients each step and rank 0 writes the checkpoint."""
    torchrun = Path(sys.executable).parent / "torchrun"
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("batch_size = 4\nnum_workers = 0\ndevice = \"cpu\"\nlog_every = 1\nckpt_every = 3\n"
                   "sample_every = 1000\nval_every = 1000\nsteps = 3\ngrid_samples = 2\n[model]\nwidth = 0.125\n")
    run = tmp_path / "run"
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", CLI, "train", small_ds, "--out",
                        str(run), "--config", str(cfg)], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert ckpt.resolve(run).name == "ckpt-0000003"
    recs = read_log(run)
    assert [x["step"] for x in recs] == [1, 2, 3]  # only rank 0 logs
