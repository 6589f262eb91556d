"""Distributed training on CPU (gloo): DDP + SyncBatchNorm equals one process on the whole batch,
the local rank picks the GPU, torchrun end to end."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from textsynth.errors import ConfigError  # noqa: E402
from textsynth.srnet import checkpoint as ckpt  # noqa: E402
from textsynth.srnet import dist as ddp  # noqa: E402

from .support.training import CLI, refused_lines, small_dataset  # noqa: E402
STEPS = 5
# Adam turns float-rounding differences in near-zero gradients into +-lr steps, which GAN training then
# amplifies (measured: 1e-7 relative at step 0, 2e-3 by step 4 at lr 1e-4; 3e-5 at lr 1e-5). A small lr keeps
# the 5-step loss comparison about DDP, and the step-0 gradient check below is exact at any lr.
LR = 1e-5


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> str:
    return small_dataset(tmp_path_factory, "ddp-ds")


# --- rank -> device ------------------------------------------------------------------------------

def test_local_rank_picks_the_gpu(monkeypatch):
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "3")
    info = ddp.env_info()
    assert (info.rank, info.world, info.local_rank) == (5, 8, 3)
    for name in ("auto", "cuda"):
        assert ddp.device_for(name, info.local_rank, True, 4) == torch.device("cuda", 3)
    assert ddp.device_for("cuda:1", info.local_rank, True, 4) == torch.device("cuda", 1)
    assert ddp.device_for("cpu", info.local_rank, True, 4) == torch.device("cpu")
    assert ddp.device_for("auto", info.local_rank, False, 0) == torch.device("cpu")
    with pytest.raises(ConfigError, match="LOCAL_RANK=3: GPU 3 does not exist"):
        ddp.device_for("cuda", info.local_rank, True, 2)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        ddp.device_for("cuda", info.local_rank, False, 0)
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ConfigError, match="LOCAL_RANK"):
        ddp.env_info()


def test_cuda_without_a_gpu_is_a_one_line_cli_error(small_ds, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert refused_lines(small_ds, tmp_path / "run", "--device", "cuda", "--no-perceptual") == [
        "error: train.device='cuda' but CUDA is not available (no GPU visible to this process)"]


# --- 2 gloo ranks x batch 4 == 1 process x batch 8 ----------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(rank: int, world: int, port: int, batches_path: str, out_path: str) -> None:
    """One process of the comparison: the trainer's own model setup (SyncBatchNorm, DDP wrappers)."""
    import torch.distributed as dist

    from textsynth.srnet.losses import LossConfig
    from textsynth.srnet.model import SRNetConfig
    from textsynth.srnet.step import make_optimizers, train_step
    from textsynth.srnet.train import build_models

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    info, device = ddp.setup("cpu")
    torch.manual_seed(0)
    gen, d_b, d_f = build_models(SRNetConfig(width=0.125), device, False)
    if world > 1:
        gen, d_b, d_f = (ddp.convert_sync_batchnorm(m, device) for m in (gen, d_b, d_f))
    opt_g, opt_d = make_optimizers(gen, d_b, d_f, lr=LR)
    grads0: dict[str, torch.Tensor] = {}
    for name, opt in (("g", opt_g), ("d", opt_d)):  # record the synchronised gradients the first step applies
        def first_step(*a, _opt=opt, _name=name, _step=opt.step, **k):
            if _name not in grads0:
                grads0[_name] = torch.cat([p.grad.detach().flatten() for grp in _opt.param_groups
                                           for p in grp["params"] if p.grad is not None])
            return _step(*a, **k)
        opt.step = first_step
    if world > 1:
        gen, d_b, d_f = (ddp.wrap(m, device, sync_bn=True) for m in (gen, d_b, d_f))
    # the masked text L1 weighs text pixels by the batch's text fraction, a per-batch statistic
    # (per GPU under DDP, as in any data-parallel run): plain L1 here so both runs share one objective
    cfg = LossConfig(text_l1_masked=False)
    batches = torch.load(batches_path)
    per = 8 // world
    losses = []
    for s, b in enumerate(batches):
        part = {k: v[rank * per:(rank + 1) * per] for k, v in b.items()}
        res = train_step(gen, d_b, d_f, opt_g, opt_d, part, cfg, step=s, d_for_g=(ddp.inner(d_b), ddp.inner(d_f)),
                         as_tensors=True)
        vals = ddp.all_reduce_sum(res["values"].clone()) / world
        losses.append(dict(zip(res["names"], vals.tolist())))
    if info.main:
        sd = {k: v.detach().clone() for k, v in ddp.inner(gen).state_dict().items()}
        torch.save({"losses": losses, "gen": sd, "grads0": grads0}, out_path)
    if world > 1:
        dist.destroy_process_group()


def test_two_gloo_ranks_of_batch_4_match_one_process_of_batch_8(small_ds, tmp_path):
    import torch.multiprocessing as mp

    from textsynth.loading import make_loader

    loader = make_loader(small_ds, batch_size=8, keys=("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f", "mask_t"),
                         num_workers=0, shuffle=False, height=64, fit="resize", pin_memory=False)
    batches = []
    for b in loader:
        batches.append({k: b[k].clone() for k in ("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f", "mask_t")})
        if len(batches) == STEPS:
            break
    path = str(tmp_path / "batches.pt")
    torch.save(batches, path)
    mp.spawn(_run, args=(2, _free_port(), path, str(tmp_path / "two.pt")), nprocs=2, join=True)
    threads = torch.get_num_threads()
    try:
        _run(0, 1, 0, path, str(tmp_path / "one.pt"))  # the reference: this process, no process group
    finally:
        torch.set_num_threads(threads)
        for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
            os.environ.pop(k, None)
    two, one = torch.load(tmp_path / "two.pt"), torch.load(tmp_path / "one.pt")
    # what DDP exists for: the all-reduced gradient equals the global batch's. Checked on the first update
    # of the run (the discriminators'); G's first update already sees the stepped discriminators
    a, b = two["grads0"]["d"], one["grads0"]["d"]
    assert a.shape == b.shape and (a - b).norm() <= 1e-4 * b.norm(), float((a - b).norm() / b.norm())
    assert len(two["losses"]) == len(one["losses"]) == STEPS
    for s, (a, b) in enumerate(zip(two["losses"], one["losses"])):
        assert a.keys() == b.keys()
        for k in a:  # losses within 1e-3 relative; mean logits (near 0, any sign) within 1e-3
            tol = 1e-3 if k.startswith(("d_real", "d_fake")) else 1e-3 * abs(b[k])
            assert abs(a[k] - b[k]) <= tol, (s, k, a[k], b[k])
    # BatchNorm running statistics follow the global batch (SyncBatchNorm)
    stats = [k for k in one["gen"] if k.endswith(("running_mean", "running_var"))]
    assert stats
    for k in stats:  # (weights drift apart by float rounding, so statistics within 1%; unsynchronised: ~10%+)
        assert (two["gen"][k] - one["gen"][k]).norm() <= 1e-2 * one["gen"][k].norm(), k


def test_cpu_sync_batchnorm_keeps_parameters_and_buffers(small_ds):
    from textsynth.srnet.model import Discriminator, SRNetConfig

    d = Discriminator(SRNetConfig(width=0.125))
    before = {k: v.clone() for k, v in d.state_dict().items()}
    params = {id(p) for p in d.parameters()}
    conv = ddp.convert_sync_batchnorm(d, torch.device("cpu"))
    assert any(isinstance(m, ddp.CpuSyncBatchNorm) for m in conv.modules())
    assert {id(p) for p in conv.parameters()} == params  # optimisers built before conversion stay valid
    assert all(torch.equal(before[k], v) for k, v in conv.state_dict().items())


# --- torchrun end to end ------------------------------------------------------------------------

def test_torchrun_two_ranks_with_syncbn_write_one_checkpoint_and_log(small_ds, tmp_path):
    """`torchrun --nproc_per_node 2 textsynth train ...` (gloo on CPU): DDP, SyncBatchNorm on, rank 0
    writes the checkpoint and the log; the checkpoint loads into a plain 1-process run."""
    torchrun = Path(sys.executable).parent / "torchrun"
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("batch_size = 4\nnum_workers = 0\ndevice = \"cpu\"\nlog_every = 1\nckpt_every = 3\n"
                   "sample_every = 1000\nval_every = 1000\nsteps = 3\ngrid_samples = 2\n[model]\nwidth = 0.125\n")
    run = tmp_path / "run"
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", CLI, "train", small_ds, "--out",
                        str(run), "--config", str(cfg), "--no-perceptual"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert ckpt.find(run).name == "ckpt-0000003"
    state = json.loads((ckpt.find(run) / "state.json").read_text())
    assert state["world"] == 2 and state["batches_done"] == 3
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in recs] == [1, 2, 3]  # only rank 0 logs
    # a loss blowing up under DDP: every rank stops at the same step naming the last good checkpoint
    boom = tmp_path / "boom.toml"
    boom.write_text(cfg.read_text().replace("steps = 3", "steps = 6").replace("[model]", "[loss]\nbg_l1 = 1e39\n"
                                                                                  "fus_l1 = 1e39\n[model]"))
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", CLI, "train", small_ds, "--out",
                        str(run), "--config", str(boom), "--no-perceptual"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0
    errors = [x for x in (r.stdout + r.stderr).splitlines() if x.startswith("error: non-finite loss by step 4")]
    assert len(errors) == 2 and all(f"Last good checkpoint: {run / 'ckpt-0000003'}" in x for x in errors), r.stderr
    assert ckpt.find(run).name == "ckpt-0000003"
    # a 1-process resume of the 2-process run: position mapped, weights load into plain BatchNorm
    from textsynth.srnet.model import SRNetConfig
    from textsynth.srnet.train import TrainConfig, train

    lines: list[str] = []
    train(small_ds, run, TrainConfig(model=SRNetConfig(width=0.125), batch_size=4, num_workers=0, device="cpu",
                                     log_every=1, steps=4, grid_samples=2), perceptual=False, log=lines.append)
    assert any("checkpoint written by 2 processes, resuming with 1" in s for s in lines)
    assert ckpt.find(run).name == "ckpt-0000004"
