"""`textsynth edit` on bad input: one line `error: ...` naming the file or value, nothing written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from textsynth.srnet import checkpoint as ckpt  # noqa: E402
from textsynth.srnet.model import SRNetConfig  # noqa: E402
from textsynth.srnet.step import make_optimizers  # noqa: E402
from textsynth.srnet.train import TrainConfig, build_models  # noqa: E402

CLI = str(Path(sys.executable).parent / "textsynth")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real checkpoint of a freshly initialised tiny SRNet (what the trainer writes at step 0)."""
    d = tmp_path_factory.mktemp("edit") / "run"
    d.mkdir()
    cfg = TrainConfig(model=SRNetConfig(width=0.125))
    gen, d_b, d_f = build_models(cfg.model, torch.device("cpu"), False)
    opt_g, opt_d = make_optimizers(gen, d_b, d_f)
    ckpt.save(d, 0, {"gen": gen, "d_b": d_b, "d_f": d_f}, {"opt_g": opt_g, "opt_d": opt_d},
              {"epoch": 0, "batches_done": 0, "train": cfg.to_dict()})
    return d


@pytest.fixture(scope="module")
def crop(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("crop") / "crop.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 96, 3), dtype=np.uint8)).save(p)
    return p


def edit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "edit", *args], capture_output=True, text=True, timeout=300)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    return lines[0]


def copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def test_the_good_case_works(run, crop, tmp_path):
    r = edit("--checkpoint", str(run), "--image", str(crop), "--text", "hi", "--out", str(tmp_path / "o.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "o.png").size == (96, 32)


def test_weights_of_another_shape_name_the_file_and_tensor(run, crop, tmp_path):
    bad = copy_run(run, tmp_path / "bad")
    c = ckpt.find(bad)
    state = json.loads((c / "state.json").read_text())
    state["train"]["model"]["width"] = 0.25  # the weights are width 0.125
    (c / "state.json").write_text(json.dumps(state))
    line = one_error_line(edit("--checkpoint", str(bad), "--image", str(crop), "--text", "hi",
                               "--out", str(tmp_path / "o.png")))
    assert str(c / "gen.safetensors") in line and "has shape" in line and "needs" in line
    assert not (tmp_path / "o.png").exists()


def test_a_state_json_missing_a_key_is_named(run, crop, tmp_path):
    bad = copy_run(run, tmp_path / "bad")
    c = ckpt.find(bad)
    state = json.loads((c / "state.json").read_text())
    del state["train"]
    (c / "state.json").write_text(json.dumps(state))
    line = one_error_line(edit("--checkpoint", str(bad), "--image", str(crop), "--text", "hi",
                               "--out", str(tmp_path / "o.png")))
    assert line == (f"error: {c / 'state.json'} lacks the key 'train' "
                    "(not a textsynth SRNet checkpoint, or a damaged one)")


def test_a_20000_pixel_square_image_is_refused(run, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)  # 400 M pixels, a few kB on disk
    line = one_error_line(edit("--checkpoint", str(run), "--image", str(huge), "--text", "hi",
                               "--out", str(tmp_path / "o.png")))
    assert f"--image {huge}" in line and "too large" in line


@pytest.mark.parametrize("name, why", [("missing/o.png", "does not exist"),
                                       ("o.xyz", "unknown image extension '.xyz'")])
def test_an_unusable_out_is_refused_before_any_work(run, crop, tmp_path, name, why):
    out = tmp_path / name
    line = one_error_line(edit("--checkpoint", str(run), "--image", str(crop), "--text", "hi", "--out", str(out)))
    assert f"--out {out}" in line and why in line
    assert not out.exists()


def test_device_cuda_without_a_gpu(run, crop, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    line = one_error_line(edit("--checkpoint", str(run), "--image", str(crop), "--text", "hi",
                               "--out", str(tmp_path / "o.png"), "--device", "cuda"))
    assert line == "error: --device='cuda' but CUDA is not available (no GPU visible to this process)"
