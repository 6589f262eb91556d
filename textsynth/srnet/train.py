"""Train the bundled SRNet on textsynth shards. Reads top to bottom: config, setup, resume, loop.

Exact resume: a checkpoint holds weights, optimiser and RNG state and the data position (epoch,
batches done); the loader's order is a pure function of (seed, epoch), so a resumed run replays
the uninterrupted run's next steps bit for bit (same device, thread count and world size).
Preemption: SIGTERM / SIGINT finish the current step, write a checkpoint and return (all ranks agree
on the step). Losses stay on the device and are read once per log interval and before each
checkpoint, where the finite check runs: no per-step host sync.
"""
from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ConfigError, TextsynthError
from ..sample import SRNET_KEYS
from ..typedconfig import TypedConfig
from . import checkpoint as ckpt
from . import dist as ddp
from . import objective
from .evaluate import evaluate
from .losses import LossConfig
from .model import Discriminator, Generator, SRNetConfig
from .runlog import LOG_FORMATS, RunLog, plot_losses, save_grid, summary_writer
from .step import make_optimizers, train_step

TRAIN_KEYS = SRNET_KEYS


class TrainingDiverged(TextsynthError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainConfig(TypedConfig):
    """Everything a run needs besides the data; saved in every checkpoint."""

    SECTION = "train"

    model: SRNetConfig = field(default_factory=SRNetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    steps: int = 500_000
    batch_size: int = 8
    height: int = 64
    width_multiple: int = 8  # batch widths are multiples of this (64 with compile: few shapes, few recompiles)
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
    sync_batchnorm: bool = True  # with more than one process: BatchNorm statistics over the global batch
    log_format: str = "jsonl"  # jsonl | tensorboard (log.jsonl is written either way)
    log_every: int = 50
    sample_every: int = 1000
    ckpt_every: int = 1000
    val_every: int = 2000
    val_batches: int = 20
    keep_checkpoints: int = 3
    grid_samples: int = 4

    def check(self, path: str) -> None:
        for name in ("steps", "batch_size", "height", "width_multiple", "lr_decay_every", "log_every", "sample_every",
                     "ckpt_every",
                     "val_every", "val_batches", "keep_checkpoints", "grid_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{path}.{name} must be a positive integer, got {v!r}")
        if self.height % 8:
            raise ConfigError(f"{path}.height must be a multiple of 8, got {self.height}")
        if not (self.lr > 0 and 0 < self.lr_decay <= 1):
            raise ConfigError(f"{path}.lr must be > 0 and {path}.lr_decay in (0, 1], got {self.lr}, {self.lr_decay}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"{path}.log_format must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.num_workers < 0:
            raise ConfigError(f"{path}.num_workers must be >= 0, got {self.num_workers}")


def build_models(cfg: SRNetConfig, device: torch.device, channels_last: bool):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = Generator(cfg).to(device, memory_format=fmt)
    d_b = Discriminator(cfg).to(device, memory_format=fmt)
    d_f = Discriminator(cfg).to(device, memory_format=fmt)
    return gen, d_b, d_f


class TrainingStopped(TextsynthError):
    """SIGTERM/SIGINT: the run finished its step, saved a checkpoint and stopped (rerun to resume)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


class _StopSignal:
    """SIGTERM / SIGINT set a flag the loop reads after each step; a second SIGINT interrupts at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "_StopSignal":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _ignore_sigint(worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which finishes its step and checkpoints."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LossWindow:
    """Per-step losses summed on the device; read back (and, with DDP, averaged over ranks) on demand."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, ...], torch.Tensor] = {}
        self.counts: dict[tuple[str, ...], int] = {}
        self.steps = 0

    def add(self, res: dict[str, Any]) -> None:
        key = res["names"]
        self.sums[key] = self.sums[key] + res["values"] if key in self.sums else res["values"].clone()
        self.counts[key] = self.counts.get(key, 0) + 1
        self.steps += 1

    def means(self, world: int) -> dict[str, float]:
        """Mean of each loss over the window (and over ranks): one host read per group of keys."""
        total: dict[str, float] = {}
        count: dict[str, int] = {}
        for key in sorted(self.sums):  # D losses appear in both groups (steps with and without a G update)
            for name, v in zip(key, ddp.all_reduce_sum(self.sums[key].clone()).tolist()):
                total[name] = total.get(name, 0.0) + v
                count[name] = count.get(name, 0) + self.counts[key] * world
        return {k: total[k] / count[k] for k in total}

    def reset(self) -> None:
        self.sums, self.counts, self.steps = {}, {}, 0


def _position_for(saved: dict[str, Any], world: int, log: Callable[[str], None]) -> tuple[int, int]:
    """(epoch, batches_done) for this world size; a different world size resumes at the nearest batch."""
    epoch, done = int(saved["epoch"]), int(saved["batches_done"])
    old = int(saved.get("world", world))
    if old != world:
        done = done * old // world
        log(f"note: checkpoint written by {old} processes, resuming with {world}: the data position is "
            f"mapped to batch {done} of epoch {epoch} (not a bit-exact continuation)")
    return epoch, done


# --- the run -------------------------------------------------------------------------------------

def train(dataset: str, out: str | Path, cfg: TrainConfig, val: str | None = None, vgg_weights: str | None = None,
          max_steps: int | None = None, log: Callable[[str], None] = print, perceptual: bool = True,
          max_seconds: float | None = None, allow_partial: bool = False) -> dict[str, Any]:
    """Train (or resume) a run in `out` on `dataset`; stops at cfg.steps, after max_steps more steps or
    after max_seconds of wall time (checkpointing there; all ranks agree on the step).

    perceptual=True (the paper's objective) needs VGG19 weights: vgg_weights, or torchvision's file in
    the torch hub cache (downloaded if the machine is online); perceptual=False trains without the
    perceptual and style terms. Returns the last logged record. Raises TrainingDiverged on a
    non-finite loss (the newest checkpoint on disk is the last good one) and TrainingStopped after a
    SIGTERM/SIGINT once the checkpoint is written.
    """
    from ..loading import make_loader  # torch-side data loading lives with the loader

    out = Path(out)
    info, device = ddp.setup(cfg.device)
    cuda = device.type == "cuda"
    channels_last = cfg.channels_last and cuda
    amp_dtype = torch.bfloat16 if (cfg.bf16 and cuda) else None
    if cfg.log_format == "tensorboard":
        summary_writer()  # refuses before anything is written when tensorboard is missing
    vgg, goal = objective.perceptual_setup(perceptual, vgg_weights)  # refuses before anything is written
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.clean_temps(out)

    # models (BatchNorm made synchronous first, so optimisers see the final parameters), optimisers;
    # weights are initialised from the seed, then overwritten by a checkpoint
    torch.manual_seed(cfg.seed)
    gen, d_b, d_f = build_models(cfg.model, device, channels_last)
    sync_bn = cfg.sync_batchnorm and info.world > 1
    if sync_bn:
        gen, d_b, d_f = (ddp.convert_sync_batchnorm(m, device) for m in (gen, d_b, d_f))
    opt_g, opt_d = make_optimizers(gen, d_b, d_f, lr=cfg.lr, betas=cfg.betas)
    modules = {"gen": gen, "d_b": d_b, "d_f": d_f}
    optimizers = {"opt_g": opt_g, "opt_d": opt_d}
    if vgg is not None:
        vgg = vgg.to(device)

    step, epoch, batches_done = 0, 0, 0
    found = ckpt.latest(out)
    if found is not None:
        saved = ckpt.read_state(found)
        if ckpt.state_value(found, saved, "train", "model") != cfg.model.to_dict():
            raise ConfigError(f"{found}: saved with a different model config; use another --out")
        objective.check_resume(saved.get("objective"), goal, found)
        state = ckpt.load_training(found, modules, optimizers, device)
        step = state["step"]
        epoch, batches_done = _position_for(state, info.world, log if info.main else lambda s: None)
        if info.main:
            log(f"resumed from {found} at step {step} (epoch {epoch}, batch {batches_done})")
    if info.main and vgg is None:
        log("note: training WITHOUT the perceptual and style losses of the fusion module (--no-perceptual)")

    if cfg.compile:  # after loading weights, before DDP: compiled modules wrap the same parameters
        gen, d_b, d_f = (torch.compile(m) for m in (gen, d_b, d_f))
    if info.world > 1:  # DDP broadcasts rank 0's weights at construction
        gen, d_b, d_f = (ddp.wrap(m, device, sync_bn) for m in (gen, d_b, d_f))
    d_for_g = (ddp.inner(d_b), ddp.inner(d_f))  # frozen in the G step: no gradient reduction for them

    loader = make_loader(dataset, batch_size=cfg.batch_size, keys=TRAIN_KEYS, num_workers=cfg.num_workers,
                         seed=cfg.seed, epoch=epoch, rank=info.rank, world_size=info.world, height=cfg.height,
                         multiple=cfg.width_multiple, drop_last=True, allow_partial=allow_partial,
                         worker_init_fn=_ignore_sigint if cfg.num_workers else None)
    if len(loader) == 0:
        raise TextsynthError(f"{dataset}: fewer samples than one batch of {cfg.batch_size} per rank")
    batches_done = min(batches_done, len(loader))
    runlog = RunLog(out, cfg.log_format, step) if info.main else None
    grid_batch = _first_batch(val or dataset, cfg, allow_partial and not val) if info.main else None
    end = cfg.steps if max_steps is None else min(cfg.steps, step + max_steps)
    window = LossWindow()
    t_last, last_record = time.perf_counter(), {}
    deadline = None if max_seconds is None else time.monotonic() + max_seconds

    def save() -> Path | None:
        if info.main:
            state = {"epoch": epoch, "batches_done": batches_done, "world": info.world, "objective": goal,
                     "train": cfg.to_dict()}
            ckpt.save(out, step, modules, optimizers, state, keep=cfg.keep_checkpoints, device=device)
            plot_losses(out / "log.jsonl", out / "loss.png")
        ddp.barrier()  # no rank leaves (or exits) before the checkpoint is on disk
        return ckpt.latest(out) if info.main else None

    try:
        with _StopSignal() as stop:
            while step < end:
                loader.set_epoch(epoch, start_batch=batches_done)
                for i, batch in enumerate(loader, start=batches_done):
                    for g in opt_g.param_groups + opt_d.param_groups:
                        g["lr"] = cfg.lr * cfg.lr_decay ** (step // cfg.lr_decay_every)
                    window.add(train_step(gen, d_b, d_f, opt_g, opt_d, batch, cfg.loss, vgg, step=step,
                                          channels_last=channels_last, autocast_dtype=amp_dtype,
                                          d_for_g=d_for_g, as_tensors=True))
                    step += 1
                    batches_done = i + 1
                    signalled, out_of_time = ddp.any_rank(stop.signum is not None,
                                                          deadline is not None and time.monotonic() >= deadline)
                    stopping = signalled or out_of_time
                    want_ckpt = step % cfg.ckpt_every == 0 or step == end or stopping
                    if step % cfg.log_every == 0 or want_ckpt:
                        means = window.means(info.world)  # the host read; identical on every rank
                        bad = {k: v for k, v in means.items() if not math.isfinite(v)}
                        if bad:
                            good = ckpt.latest(out)
                            raise TrainingDiverged(
                                f"non-finite loss by step {step} (window of {window.steps} steps): {bad}; stopped "
                                f"without saving. Last good checkpoint: {good or 'none yet'}")
                        if step % cfg.log_every == 0:
                            now = time.perf_counter()
                            last_record = {"step": step, "epoch": epoch, "lr": opt_g.param_groups[0]["lr"], **means,
                                           "samples_per_s": round(window.steps * cfg.batch_size * info.world
                                                                  / max(now - t_last, 1e-9), 2)}
                            if runlog is not None:
                                runlog.train(last_record)
                                log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in last_record.items()))
                            window.reset()
                            t_last = now
                    if info.main and val and step % cfg.val_every == 0:
                        table = validate(ddp.inner(gen), val, cfg, device, amp_dtype)
                        runlog.val(step, table)
                        m, b, g = table["model"], table["identity"], table["gain"]
                        log(f"val step={step} psnr={_f(m['psnr'])} (identity {_f(b['psnr'])}, gain "
                            f"{_f(g['psnr_db'])} dB) ssim={_f(m['ssim'])} (identity {_f(b['ssim'])}) "
                            f"text_l1={_f(m['text_l1'])} skeleton_dice={_f(m['skeleton_dice'])}")
                    if info.main and step % cfg.sample_every == 0:
                        save_grid(ddp.inner(gen), grid_batch, out / "samples" / f"step-{step:07d}.png", device,
                                  amp_dtype)
                    if want_ckpt:
                        path = save()
                        if signalled:
                            name = signal.Signals(stop.signum).name if stop.signum else "a signal on another rank"
                            raise TrainingStopped(f"stopped by {name} at step {step}; checkpoint {path or out}; "
                                                  f"rerun the same command to resume", stop.signum or signal.SIGTERM)
                    if step >= end or out_of_time:
                        break
                else:  # epoch finished
                    epoch, batches_done = epoch + 1, 0
                    continue
                break
    finally:
        if runlog is not None:
            runlog.close()
    return last_record


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _first_batch(root: str, cfg: TrainConfig, allow_partial: bool = False) -> dict[str, Any]:
    from ..loading import make_loader

    loader = make_loader(root, batch_size=cfg.grid_samples, keys=TRAIN_KEYS, num_workers=0, shuffle=False,
                         height=cfg.height, pin_memory=False, allow_partial=allow_partial)
    return next(iter(loader))


def validate(gen, root: str, cfg: TrainConfig, device: torch.device, amp_dtype) -> dict[str, Any]:
    """The evaluation table (model, identity baseline, gain) on the first val_batches batches of root."""
    return evaluate(gen, root, batch_size=cfg.batch_size, height=cfg.height, device=device, amp_dtype=amp_dtype,
                    max_batches=cfg.val_batches)
