"""Evaluation figures as the papers compute them (checked against scikit-image), the identity baseline,
and `textsynth evaluate` printing the table as JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity  # noqa: E402

from textsynth.local_dataset import build_dataset  # noqa: E402
from textsynth.srnet.metrics import image_metrics, skeleton_dice, text_region_l1  # noqa: E402
from textsynth.srnet.model import SRNetConfig  # noqa: E402
from textsynth.srnet.train import TrainConfig, train  # noqa: E402

CLI = str(Path(sys.executable).parent / "textsynth")


def _luma(a: np.ndarray) -> np.ndarray:
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _reference(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """scikit-image's implementations: Gaussian-window SSIM (sigma 1.5, population covariance) on luma."""
    p, t = pred.astype(np.float64), target.astype(np.float64)
    return {"mse": mean_squared_error(p / 255, t / 255), "psnr": peak_signal_noise_ratio(t, p, data_range=255),
            "ssim": structural_similarity(_luma(p), _luma(t), data_range=255, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)}


def test_mse_psnr_ssim_match_scikit_image_on_0_255_images():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (3, 64, 120, 3)).astype(np.uint8)
    pred = np.clip(target.astype(int) + rng.integers(-40, 41, target.shape), 0, 255).astype(np.uint8)
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).double()  # noqa: E731
    got = image_metrics(to_t(pred), to_t(target))
    for i in range(3):
        ref = _reference(pred[i], target[i])
        for k, v in ref.items():
            assert float(got[k][i]) == pytest.approx(v, rel=1e-9, abs=1e-12), k
    same = image_metrics(to_t(target), to_t(target))
    assert torch.all(same["ssim"] == 1) and torch.all(torch.isinf(same["psnr"]))


def test_text_region_l1_and_skeleton_dice():
    t_t = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    o_t = torch.zeros_like(t_t)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :2, :] = 255  # 16 text pixels
    o_t[..., :2, :4] = 51  # error 0.2 on half of them; outside the mask errors do not count
    o_t[..., 5:, :] = 255
    assert float(text_region_l1(o_t, t_t, mask)) == pytest.approx(0.1)
    t_sk = torch.zeros(2, 1, 8, 8)
    t_sk[:, :, 3, :] = 255  # 8 skeleton pixels
    o_sk = torch.zeros(2, 1, 8, 8)
    o_sk[0, :, 3, :4] = 0.9  # 4 hits
    o_sk[0, :, 5, :4] = 0.9  # 4 false positives
    o_sk[1, :, 3, :] = 0.4  # below the threshold: nothing predicted
    assert skeleton_dice(o_sk, t_sk).tolist() == pytest.approx([2 * 4 / 16, 0.0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, Path]:
    base = tmp_path_factory.mktemp("eval")
    build_dataset(base / "ds", 24, shards=1, pipeline="smoke", seed=7)
    cfg = TrainConfig(model=SRNetConfig(width=0.125), batch_size=4, num_workers=0, device="cpu", log_every=1,
                      steps=2, grid_samples=2, seed=0)
    train(str(base / "ds"), base / "run", cfg, perceptual=False, log=lambda s: None)
    return str(base / "ds"), base / "run"


def test_evaluate_prints_the_model_next_to_the_identity_baseline(trained):
    ds, run = trained
    r = subprocess.run([CLI, "evaluate", "--checkpoint", str(run), "--data", ds, "--device", "cpu",
                        "--batch-size", "8"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    table = json.loads(r.stdout)
    assert table["samples"] == 24
    m, b, g = table["model"], table["identity"], table["gain"]
    assert set(m) >= {"mse", "psnr", "ssim", "ssim_mostel", "l1", "text_l1", "skeleton_dice", "bg_l1"}
    # the identity baseline is i_s scored as o_f against t_f, sample by sample, as scikit-image computes it
    from textsynth.shards.dataset import Dataset

    data = Dataset(ds)
    refs = [_reference(data[i].images["i_s"], data[i].images["t_f"]) for i in range(len(data))]
    for k in ("mse", "psnr", "ssim"):
        assert b[k] == pytest.approx(float(np.mean([x[k] for x in refs])), rel=1e-9), k
    assert g["psnr_db"] == pytest.approx(m["psnr"] - b["psnr"])
    assert g["mse_ratio"] == pytest.approx(m["mse"] / b["mse"])
    assert m["psnr"] < b["psnr"]  # 2 steps of training do not beat copying the input
