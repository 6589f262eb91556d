"""Train the bundled SRNet on textsynth shards. Reads top to bottom: config, setup, resume, loop.

Exact resume: a checkpoint holds weights, optimiser and RNG state and the data position (epoch,
batches done); the loader's order is a pure function of (seed, epoch), so a resumed run replays
the uninterrupted run's next steps bit for bit (same device and thread count).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError, TextsynthError
from . import checkpoint as ckpt
from .losses import LossConfig, VGG19Features
from .metrics import l1 as l1_metric, psnr, ssim
from .infer import run_generator, to_uint8
from .model import Discriminator, Generator, SRNetConfig
from .step import make_optimizers, train_step

TRAIN_KEYS = ("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f", "mask_t")


class TrainingDiverged(TextsynthError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Everything a run needs besides the data; saved in every checkpoint."""

    model: SRNetConfig = field(default_factory=SRNetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    steps: int = 500_000
    batch_size: int = 8
    height: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    lr_decay: float = 0.9  # multiply the learning rate by this ...
    lr_decay_every: int = 10_000  # ... every this many steps (the TF reference's schedule)
    seed: int = 0
    num_workers: int = 4
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = True  # autocast on CUDA
    channels_last: bool = True  # on CUDA
    compile: bool = False
    log_every: int = 50
    sample_every: int = 1000
    ckpt_every: int = 1000
    val_every: int = 2000
    val_batches: int = 20
    keep_checkpoints: int = 3
    grid_samples: int = 4

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "height", "lr_decay_every", "log_every", "sample_every", "ckpt_every",
                     "val_every", "val_batches", "keep_checkpoints", "grid_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"train.{name} must be a positive integer, got {v!r}")
        if self.height % 8:
            raise ConfigError(f"train.height must be a multiple of 8, got {self.height}")
        if not (self.lr > 0 and 0 < self.lr_decay <= 1):
            raise ConfigError(f"train.lr must be > 0 and train.lr_decay in (0, 1], got {self.lr}, {self.lr_decay}")
        if self.num_workers < 0:
            raise ConfigError(f"train.num_workers must be >= 0, got {self.num_workers}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown key train.{unknown[0]} (valid: {', '.join(sorted(known))})")
        try:
            model = SRNetConfig.from_dict(d.pop("model", {}))
            loss = LossConfig.from_dict(d.pop("loss", {}))
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(model=model, loss=loss, **d)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read train config {p}: {e}") from e
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from e


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available")
    return dev


def build_models(cfg: SRNetConfig, device: torch.device, channels_last: bool):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = Generator(cfg).to(device, memory_format=fmt)
    d_b = Discriminator(cfg).to(device, memory_format=fmt)
    d_f = Discriminator(cfg).to(device, memory_format=fmt)
    return gen, d_b, d_f


# --- distributed (torchrun) ----------------------------------------------------------------------

def _dist_setup() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _broadcast_params(modules) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, 0)


# --- the run -------------------------------------------------------------------------------------

def train(dataset: str, out: str | Path, cfg: TrainConfig, val: str | None = None, vgg_weights: str | None = None,
          max_steps: int | None = None, log: Callable[[str], None] = print,
          allow_partial: bool = False) -> dict[str, Any]:
    """Train (or resume) a run in `out` on `dataset`; stops at cfg.steps or after max_steps more steps.

    Returns the last logged record. Raises TrainingDiverged on a non-finite loss (the newest
    checkpoint on disk is the last good one).
    """
    from ..loading import make_loader  # torch-side data loading lives with the loader

    out = Path(out)
    rank, world, local_rank = _dist_setup()
    device = pick_device(cfg.device if world == 1 or cfg.device != "auto" or not torch.cuda.is_available()
                         else f"cuda:{local_rank}")
    cuda = device.type == "cuda"
    channels_last = cfg.channels_last and cuda
    amp_dtype = torch.bfloat16 if (cfg.bf16 and cuda) else None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    # models, optimisers; weights are initialised from the seed, then overwritten by a checkpoint
    torch.manual_seed(cfg.seed)
    gen, d_b, d_f = build_models(cfg.model, device, channels_last)
    opt_g, opt_d = make_optimizers(gen, d_b, d_f, lr=cfg.lr, betas=cfg.betas)
    modules = {"gen": gen, "d_b": d_b, "d_f": d_f}
    optimizers = {"opt_g": opt_g, "opt_d": opt_d}

    vgg = None
    if vgg_weights:
        vgg = VGG19Features.from_file(vgg_weights).to(device)
    elif rank == 0:
        log("note: no --vgg-weights given: training WITHOUT the perceptual and style losses of the fusion "
            "module (VGG19 ImageNet weights cannot be downloaded here; pass a torchvision VGG19 state dict "
            "or .safetensors to enable them)")

    step, epoch, batches_done = 0, 0, 0
    found = ckpt.latest(out)
    if found is not None:
        state = ckpt.load_training(found, modules, optimizers)
        step, epoch, batches_done = state["step"], state["epoch"], state["batches_done"]
        if state["train"]["model"] != cfg.model.to_dict():
            raise ConfigError(f"{found}: saved with a different model config; use another --out")
        if rank == 0:
            log(f"resumed from {found} at step {step} (epoch {epoch}, batch {batches_done})")
    elif world > 1:
        _broadcast_params(modules.values())  # every rank starts from rank 0's weights

    if cfg.compile:  # after loading weights: compiled modules wrap the same parameters
        gen = torch.compile(gen)
        d_b, d_f = torch.compile(d_b), torch.compile(d_f)

    sync = _grad_sync(world)
    loader = make_loader(dataset, batch_size=cfg.batch_size, keys=TRAIN_KEYS, num_workers=cfg.num_workers,
                         seed=cfg.seed, epoch=epoch, rank=rank, world_size=world, height=cfg.height,
                         drop_last=True, allow_partial=allow_partial)
    if len(loader) == 0:
        raise TextsynthError(f"{dataset}: fewer samples than one batch of {cfg.batch_size} per rank")
    grid_batch = _first_batch(val or dataset, cfg, allow_partial and not val) if rank == 0 else None
    log_path, records = out / "log.jsonl", []
    end = cfg.steps if max_steps is None else min(cfg.steps, step + max_steps)
    window: list[dict[str, float]] = []
    t_last, last_record = time.perf_counter(), {}

    while step < end:
        loader.set_epoch(epoch)
        for i, batch in enumerate(loader):
            if i < batches_done:  # resuming mid-epoch: the order is fixed by (seed, epoch)
                continue
            for g in opt_g.param_groups + opt_d.param_groups:
                g["lr"] = cfg.lr * cfg.lr_decay ** (step // cfg.lr_decay_every)
            losses = train_step(gen, d_b, d_f, opt_g, opt_d, batch, cfg.loss, vgg, step=step,
                                channels_last=channels_last, autocast_dtype=amp_dtype, grad_sync=sync)
            bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
            if bad:
                good = ckpt.latest(out)
                raise TrainingDiverged(f"non-finite loss at step {step}: {bad}; stopped without saving. "
                                       f"Last good checkpoint: {good or 'none yet'}")
            step += 1
            batches_done = i + 1
            window.append(losses)
            if rank == 0 and step % cfg.log_every == 0:
                now = time.perf_counter()
                last_record = _summarise(window, step, epoch, now - t_last, cfg, opt_g)
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(last_record) + "\n")
                records.append(last_record)
                log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last_record.items()))
                window, t_last = [], now
            if rank == 0 and val and step % cfg.val_every == 0:
                v = validate(gen, val, cfg, device, amp_dtype)
                with open(out / "val.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": step, **v}) + "\n")
                log(f"val step={step} " + " ".join(f"{k}={x:.4f}" for k, x in v.items()))
            if rank == 0 and step % cfg.sample_every == 0:
                save_grid(gen, grid_batch, out / "samples" / f"step-{step:07d}.png", device, amp_dtype)
            if step % cfg.ckpt_every == 0 or step == end:
                if rank == 0:
                    state = {"epoch": epoch, "batches_done": batches_done, "train": cfg.to_dict()}
                    ckpt.save(out, step, modules, optimizers, state, keep=cfg.keep_checkpoints)
                    plot_losses(log_path, out / "loss.png")
            if step >= end:
                break
        else:  # epoch finished
            epoch, batches_done = epoch + 1, 0
            continue
        break
    return last_record


def _grad_sync(world: int):
    """Average gradients across ranks before each optimiser step (None on one process)."""
    if world <= 1:
        return None
    import torch.distributed as dist

    def sync(params) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        for g in grads:
            dist.all_reduce(g)
            g.div_(world)

    return sync


def _summarise(window: list[dict[str, float]], step: int, epoch: int, seconds: float, cfg: TrainConfig,
               opt_g) -> dict[str, Any]:
    rec: dict[str, Any] = {"step": step, "epoch": epoch, "lr": opt_g.param_groups[0]["lr"]}
    keys = sorted({k for w in window for k in w if k != "g_updated"})
    for k in keys:
        vals = [w[k] for w in window if k in w]
        rec[k] = float(np.mean(vals))
    rec["samples_per_s"] = round(len(window) * cfg.batch_size / max(seconds, 1e-9), 2)
    return rec


def _first_batch(root: str, cfg: TrainConfig, allow_partial: bool = False) -> dict[str, Any]:
    from ..loading import make_loader

    loader = make_loader(root, batch_size=cfg.grid_samples, keys=TRAIN_KEYS, num_workers=0, shuffle=False,
                         height=cfg.height, allow_partial=allow_partial)
    return next(iter(loader))


@torch.no_grad()
def validate(gen, root: str, cfg: TrainConfig, device: torch.device, amp_dtype) -> dict[str, float]:
    """L1, PSNR, SSIM of o_f against t_f (and L1 of o_b against t_b) on up to val_batches batches."""
    from ..loading import make_loader

    loader = make_loader(root, batch_size=cfg.batch_size, keys=TRAIN_KEYS, num_workers=0, shuffle=False,
                         height=cfg.height)
    sums = {"f_l1": 0.0, "f_psnr": 0.0, "f_ssim": 0.0, "b_l1": 0.0}
    n = 0
    for b, batch in enumerate(loader):
        if b >= cfg.val_batches:
            break
        out = run_generator(gen, batch, device, amp_dtype)
        t_f = batch["t_f"].to(device).float() / 255.0
        t_b = batch["t_b"].to(device).float() / 255.0
        o_f = (out["o_f"] + 1) / 2
        o_b = (out["o_b"] + 1) / 2
        sums["f_l1"] += float(l1_metric(o_f, t_f).sum())
        sums["f_psnr"] += float(psnr(o_f, t_f).sum())
        sums["f_ssim"] += float(ssim(o_f, t_f).sum())
        sums["b_l1"] += float(l1_metric(o_b, t_b).sum())
        n += t_f.shape[0]
    return {k: v / max(n, 1) for k, v in sums.items()}


def save_grid(gen, batch: dict[str, Any], path: Path, device: torch.device, amp_dtype) -> None:
    """A PNG per sample row: i_s, i_t, then each output beside its target (o_sk|t_sk ... o_f|t_f)."""
    from PIL import Image

    out = run_generator(gen, batch, device, amp_dtype)

    def rgb(t: torch.Tensor, signed: bool) -> np.ndarray:
        a = to_uint8(t, signed)
        return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a

    rows = []
    for j in range(batch["i_s"].shape[0]):
        cells = [batch["i_s"][j].permute(1, 2, 0).numpy(), batch["i_t"][j].permute(1, 2, 0).numpy()]
        for o, t in (("o_sk", "t_sk"), ("o_t", "t_t"), ("o_b", "t_b"), ("o_f", "t_f")):
            cells.append(rgb(out[o][j], signed=o != "o_sk"))
            target = batch[t][j]
            cells.append(np.repeat(target.permute(1, 2, 0).numpy(), 3, axis=2) if target.shape[0] == 1
                         else target.permute(1, 2, 0).numpy())
        sep = np.full((cells[0].shape[0], 4, 3), 40, np.uint8)
        row = [c for cell in cells for c in (cell, sep)]
        rows.append(np.concatenate(row, axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 40, np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(np.concatenate(rows, axis=0)).save(tmp)
    os.replace(tmp, path)


def plot_losses(log_path: Path, png: Path) -> None:
    """Loss curves from the JSONL log (matplotlib, no display)."""
    if not log_path.is_file():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not recs:
        return
    keys = [k for k in ("d_b", "d_f", "g_total", "t_l1", "t_dice", "b_l1", "f_l1", "f_perc", "f_style")
            if any(k in r for r in recs)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for k in keys:
        pts = [(r["step"], r[k]) for r in recs if k in r]
        ax = axes[0] if k.startswith("d_") or k == "g_total" else axes[1]
        ax.plot(*zip(*pts), label=k)
    for ax, title in zip(axes, ("adversarial", "reconstruction")):
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, png)
