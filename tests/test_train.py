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

from textsynth.srnet import checkpoint as ckpt  # noqa: E402
from textsynth.srnet.losses import LossConfig  # noqa: E402
from textsynth.srnet.train import TrainConfig, TrainingDiverged  # noqa: E402

from .support.training import CLI, refused_lines, small_dataset, tiny, torch_threads, train  # noqa: E402


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> str:
    return small_dataset(tmp_path_factory, "train-ds")


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_a_hundred_and_twenty_steps_reduce_l1_and_dice(small_ds, tmp_path):
    # Logged ratios (10-step means) at step 120, lr 1e-3, seeds 3 / 4: t_l1 0.55 / 0.55, f_l1 0.71 / 0.72,
    # Dice -0.13 / -0.14; at step 200, lr 5e-4: 0.53, 0.60, -0.14. The bounds leave room for other CPUs' maths.
    with torch_threads(2):
        train(small_ds, tmp_path / "run", tiny(log_every=10, lr=1e-3), max_steps=120, log=lambda s: None)
    recs = read_log(tmp_path / "run")
    first, last = recs[0], recs[-1]
    assert last["step"] == 120
    assert last["t_l1"] < 0.7 * first["t_l1"], (first["t_l1"], last["t_l1"])
    assert last["f_l1"] < 0.8 * first["f_l1"], (first["f_l1"], last["f_l1"])
    assert last["t_dice"] < first["t_dice"] - 0.05, (first["t_dice"], last["t_dice"])


def test_checkpoints_are_complete_and_load_without_pickle(small_ds, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(small_ds, run, tiny(ckpt_every=2, sample_every=2, val_every=2, val_batches=2), val=small_ds, max_steps=4,
          log=lambda s: None)
    vals = [json.loads(x) for x in (run / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in vals] == [2, 4]
    for v in vals:
        m, b = v["model"], v["identity"]
        assert 0 < m["l1"] < 1 and 0 < m["psnr"] < 60 and -1 <= m["ssim"] <= 1 and 0 < m["mse"] < 1
        assert 0 < b["psnr"] < 60 and abs(v["gain"]["psnr_db"] - (m["psnr"] - b["psnr"])) < 1e-9
    c = ckpt.find(run)
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
    assert ckpt.find(run).name == "ckpt-0000006"


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(small_ds, tmp_path):
    run = tmp_path / "run"
    train(small_ds, run, tiny(ckpt_every=2), max_steps=2, log=lambda s: None)
    exploding = tiny(ckpt_every=1, loss=LossConfig(g_every=1, bg_l1=1e39, fus_l1=1e39))
    with pytest.raises(TrainingDiverged, match=r"non-finite loss by step 3 .*Last good checkpoint: .*ckpt-0000002"):
        train(small_ds, run, exploding, max_steps=3, log=lambda s: None)
    assert ckpt.find(run).name == "ckpt-0000002"


def test_no_perceptual_is_said_once_and_edit_returns_input_size(small_ds, tmp_path):
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


def test_log_tensorboard_without_the_package_is_one_line_and_writes_nothing(small_ds, tmp_path):
    # the CLI in a process where `import tensorboard` fails (a None entry in sys.modules makes it raise)
    no_tb = "import sys; sys.modules['tensorboard'] = None; from textsynth.cli import main; main()"
    assert refused_lines(small_ds, tmp_path / "run", "--no-perceptual", "--log", "tensorboard",
                         cli=(sys.executable, "-c", no_tb)) == [
        "error: --log tensorboard (train.log_format) needs the tensorboard package: pip install tensorboard, "
        "or use --log jsonl"]


def test_losses_are_read_from_the_device_once_per_log_interval(small_ds, tmp_path, monkeypatch):
    """No per-step host sync: the training code turns tensors into Python numbers (tolist, item, float,
    bool, int: each a device -> host sync on a GPU) only when it logs. Counted on the real methods,
    called through: 10 steps logged every 5 read twice, logged every step ten times."""
    import textsynth.srnet

    srnet = str(Path(textsynth.srnet.__file__).parent)
    reads: list[tuple[str, str, int]] = []

    def counting(name: str):
        real = getattr(torch.Tensor, name)

        def method(self, *args, **kwargs):
            caller = sys._getframe(1)
            # checkpoints copy weights to the host when they save (once, at the end here): not a step's read
            if caller.f_code.co_filename.startswith(srnet) and not caller.f_code.co_filename.endswith("checkpoint.py"):
                reads.append((name, caller.f_code.co_filename, caller.f_lineno))
            return real(self, *args, **kwargs)
        return method

    for name in ("tolist", "item", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    counts = {}
    for every in (5, 1):
        reads.clear()
        train(small_ds, tmp_path / f"run{every}", tiny(log_every=every, steps=10), log=lambda s: None)
        counts[every] = len(reads)
        assert [r["step"] for r in read_log(tmp_path / f"run{every}")] == list(range(every, 11, every))
    assert counts == {5: 2, 1: 10}, reads
