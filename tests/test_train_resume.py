"""Exact resume of the SRNet trainer: after a checkpoint, after SIGTERM / SIGINT mid-run, after a crash
(logs cut back, stale temp checkpoints removed), and a sampler that starts at the saved batch."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from textsynth.srnet import checkpoint as ckpt  # noqa: E402
from textsynth.srnet.train import TrainingStopped  # noqa: E402

from .support.training import CLI, small_dataset, tiny, train, torch_threads  # noqa: E402
KEYS = ("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f", "mask_t")


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> str:
    return small_dataset(tmp_path_factory, "resume-ds")


@pytest.fixture(autouse=True)
def _threads():
    with torch_threads(1):
        yield






def losses(run: Path) -> list[dict]:
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in recs]


def same_weights(a: Path, b: Path) -> bool:
    a, b = ckpt.find(a), ckpt.find(b)
    for name in ("gen", "d_b", "d_f"):
        wa, wb = load_file(str(a / f"{name}.safetensors")), load_file(str(b / f"{name}.safetensors"))
        if not all(torch.equal(wa[k], wb[k]) for k in wa):
            return False
    return True


def test_resume_after_sigint_and_after_max_steps_reproduces_the_uninterrupted_run_exactly(small_ds, tmp_path):
    cfg = tiny(steps=14)
    train(small_ds, tmp_path / "full", cfg, log=lambda s: None)

    def interrupt_at_3(line: str) -> None:
        if line.startswith("step=3 "):
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to this process mid-run

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingStopped, match=r"stopped by SIGINT at step [34]; checkpoint .*ckpt-000000[34]; "
                                              r"rerun the same command to resume") as e:
        train(small_ds, tmp_path / "split", cfg, log=interrupt_at_3)
    assert e.value.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are restored
    stopped = int(ckpt.latest(tmp_path / "split").name[-7:])
    assert [r["step"] for r in losses(tmp_path / "split")] == list(range(1, stopped + 1))
    train(small_ds, tmp_path / "split", cfg, max_steps=5, log=lambda s: None)
    assert ckpt.latest(tmp_path / "split").name == f"ckpt-{stopped + 5:07d}"
    train(small_ds, tmp_path / "split", cfg, log=lambda s: None)  # crosses an epoch (12 batches)
    split = losses(tmp_path / "split")
    assert [r["step"] for r in split] == list(range(1, 15))
    assert split == losses(tmp_path / "full")  # every loss equal to the bit
    assert same_weights(tmp_path / "full", tmp_path / "split")


def test_sigterm_to_the_cli_checkpoints_exits_143_and_the_rerun_resumes_exactly(small_ds, tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("batch_size = 4\nnum_workers = 0\ndevice = \"cpu\"\nlog_every = 1\nckpt_every = 1000\n"
                   "sample_every = 1000\nval_every = 1000\nsteps = 16\ngrid_samples = 2\nseed = 3\n"
                   "[model]\nwidth = 0.125\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cmd(out: Path) -> list[str]:
        return [CLI, "train", small_ds, "--out", str(out), "--config", str(cfg), "--no-perceptual"]

    r = subprocess.run(cmd(tmp_path / "full"), capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "split"
    p = subprocess.Popen(cmd(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not ((run / "log.jsonl").is_file() and len((run / "log.jsonl").read_text().splitlines()) >= 3):
        assert p.poll() is None and time.monotonic() < deadline, "the run ended before it could be signalled"
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=240)
    assert p.returncode == 128 + signal.SIGTERM, err[-2000:]
    stopped = int(ckpt.latest(run).name[-7:])
    assert 3 <= stopped < 16
    assert err.strip().splitlines()[-1] == (f"stopped by SIGTERM at step {stopped}; checkpoint "
                                            f"{run / f'ckpt-{stopped:07d}'}; rerun the same command to resume")
    assert [r["step"] for r in losses(run)] == list(range(1, stopped + 1))
    r = subprocess.run(cmd(run), capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from {run / f'ckpt-{stopped:07d}'} at step {stopped}" in r.stdout
    assert losses(run) == losses(tmp_path / "full")
    assert same_weights(tmp_path / "full", run)


def tensorboard_scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of one tag as TensorBoard itself reads the run's event files (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_after_a_crash_logs_are_cut_back_and_stale_temp_checkpoints_removed(small_ds, tmp_path):
    """The JSONL logs and, with --log tensorboard, the event files: a resume after a crash past the last
    checkpoint leaves every step once, with the resumed run's values."""
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    cfg = tiny(ckpt_every=3, val_every=2, val_batches=1, steps=8, log_format="tensorboard")

    def crash_at_5(line: str) -> None:
        if line.startswith("step=5 "):
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(small_ds, run, cfg, val=small_ds, log=crash_at_5)
    assert ckpt.latest(run).name == "ckpt-0000003"
    assert [r["step"] for r in losses(run)] == [1, 2, 3, 4, 5]  # logged past the checkpoint
    vals = lambda: [json.loads(x)["step"] for x in (run / "val.jsonl").read_text().splitlines()]  # noqa: E731
    assert vals() == [2, 4]
    # a save interrupted by a crash (another process's pid) leaves a temp folder and pointer behind
    stale = run / ".ckpt-0000006.tmp-424242"
    stale.mkdir()
    (stale / "gen.safetensors").write_bytes(b"partial")
    (run / ".latest.tmp").write_text("ckpt-0000006\n")
    lines: list[str] = []
    train(small_ds, run, cfg, val=small_ds, log=lines.append)
    assert "resumed from" in lines[0] and "at step 3" in lines[0]
    assert [r["step"] for r in losses(run)] == list(range(1, 9))  # no step twice: curves never fold back
    assert vals() == [2, 4, 6, 8]
    assert not stale.exists() and not (run / ".latest.tmp").exists()
    assert (run / "loss.png").is_file()
    # TensorBoard purged the crashed run's steps 4-5 and holds the resumed run's figures, each step once
    logged = [(r["step"], r["g_total"]) for r in losses(run)]
    events = tensorboard_scalars(run, "train/g_total")
    assert [s for s, _ in events] == list(range(1, 9))
    assert all(abs(v - g) <= 1e-6 * abs(g) for (_, v), (_, g) in zip(events, logged)), (events, logged)
    assert [s for s, _ in tensorboard_scalars(run, "val_gain/psnr_db")] == [2, 4, 6, 8]


def test_sampler_starts_at_the_saved_batch_without_reading_the_skipped_ones(small_ds):
    from textsynth.loading import make_loader

    loader = make_loader(small_ds, batch_size=4, keys=KEYS, num_workers=0, seed=5, drop_last=True,
                         pin_memory=False)
    loader.set_epoch(1)
    full = [list(b["id"]) for b in loader]
    planned = [list(x) for x in loader.sampler.batches()]
    loader.set_epoch(1, start_batch=7)
    assert [list(x) for x in loader.sampler] == planned[7:]  # indices only: nothing before batch 7 is read
    rest = [list(b["id"]) for b in loader]
    assert rest == full[7:]
    loader.set_epoch(2)  # a new epoch starts at its first batch again
    assert len(list(loader.sampler)) == len(full)
