"""The SRNet objective: VGG terms in float32 under autocast, VGG19 weights from the torch hub cache,
a clear refusal when none can be had, and the choice kept across resumes."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from textsynth.errors import ConfigError  # noqa: E402
from textsynth.srnet import checkpoint as ckpt  # noqa: E402
from textsynth.srnet import objective  # noqa: E402
from textsynth.srnet.losses import LossConfig, VGG19Features, gram_matrix, perceptual_and_style  # noqa: E402
from textsynth.srnet.model import SRNetConfig  # noqa: E402
from textsynth.srnet.train import TrainConfig, train  # noqa: E402

from .support.training import CLI, small_dataset, torch_threads  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    with torch_threads(2):
        yield


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    torch.manual_seed(0)
    return VGG19Features()


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> str:
    return small_dataset(tmp_path_factory, "loss-ds", 16, shards=1)


def test_style_loss_under_bf16_autocast_equals_float32(vgg):
    g = torch.Generator().manual_seed(1)
    t_f = torch.rand(2, 3, 64, 96, generator=g) * 2 - 1
    o_f = (t_f + 0.002 * torch.randn(t_f.shape, generator=g)).clamp(-1, 1)  # ~0.1% from the target
    perc32, style32 = perceptual_and_style(vgg, o_f, t_f)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        perc16, style16 = perceptual_and_style(vgg, o_f, t_f)
        # what the trainer used to do: features and Gram matrices inside the autocast region
        ft, fo = vgg(t_f), vgg(o_f)
        naive = sum((gram_matrix(a.bfloat16()) - gram_matrix(b.bfloat16())).abs().mean() for a, b in zip(fo, ft))
    assert abs(float(style16) - float(style32)) <= 1e-3 * float(style32)
    assert abs(float(perc16) - float(perc32)) <= 1e-3 * float(perc32)
    assert abs(float(naive) - float(style32)) > 1e-3 * float(style32)  # the check can fail


def _put_in_hub_cache(vgg: VGG19Features) -> Path:
    path = objective.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in vgg.features.state_dict().items()}, path)
    return path


def test_vgg19_comes_from_the_torch_hub_cache_and_the_choice_is_kept_on_resume(vgg, small_ds, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    path = _put_in_hub_cache(vgg)
    assert path == tmp_path / "torch-home" / "hub" / "checkpoints" / "vgg19-dcbbe8a1.pth"
    loaded, goal = objective.perceptual_setup(True, None)  # torch.hub.load_state_dict_from_url finds the cached file
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), vgg.state_dict().values()))
    assert goal["perceptual"] and goal["vgg_source"] == str(path) and len(goal["vgg_sha256"]) == 64

    cfg = TrainConfig(model=SRNetConfig(width=0.125), loss=LossConfig(), batch_size=4, num_workers=0,
                      device="cpu", log_every=1, steps=2, grid_samples=2, seed=0)
    run = tmp_path / "run"
    lines: list[str] = []
    train(small_ds, run, cfg, log=lines.append)  # the default: the paper's objective
    rec = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert rec["f_perc"] > 0 and rec["f_style"] > 0
    assert not any("WITHOUT" in s for s in lines)
    saved = json.loads((ckpt.find(run) / "state.json").read_text())["objective"]
    assert saved == goal
    with pytest.raises(ConfigError, match=r"trained with VGG19 perceptual/style terms .*this run would train "
                                          r"without perceptual/style terms \(--no-perceptual\)"):
        train(small_ds, run, TrainConfig(**{**cfg.__dict__, "steps": 3}), perceptual=False, log=lambda s: None)
    # other weights (another file) are another objective too
    other = tmp_path / "other.pth"
    torch.manual_seed(5)
    torch.save({f"features.{k}": v for k, v in VGG19Features().features.state_dict().items()}, other)
    with pytest.raises(ConfigError, match="weights sha256"):
        train(small_ds, run, TrainConfig(**{**cfg.__dict__, "steps": 3}), vgg_weights=str(other), log=lambda s: None)
    assert ckpt.find(run).name == "ckpt-0000002"


def test_without_weights_offline_train_refuses_naming_every_way_out(small_ds, tmp_path):
    home = tmp_path / "torch-home"
    env = {**os.environ, "TORCH_HOME": str(home),
           # a real download attempt that cannot succeed here (nothing listens on port 9)
           "TEXTSYNTH_VGG19_URL": "http://127.0.0.1:9/models/vgg19-dcbbe8a1.pth"}
    run = tmp_path / "run"
    r = subprocess.run([CLI, "train", small_ds, "--out", str(run), "--device", "cpu"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the SRNet objective needs VGG19 ImageNet weights"), r.stderr
    cached = str(home / "hub" / "checkpoints" / "vgg19-dcbbe8a1.pth")
    for part in ("http://127.0.0.1:9/models/vgg19-dcbbe8a1.pth", cached,
                 "--vgg-weights FILE", "--no-perceptual"):
        assert part in lines[0]
    assert not run.exists()  # nothing written
    assert not (home / "hub" / "checkpoints" / "vgg19-dcbbe8a1.pth").exists()
