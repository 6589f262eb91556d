"""A run folder's logs: log.jsonl / val.jsonl (always), TensorBoard events (optional), loss.png, sample grids.

On resume the JSONL files are cut back to the checkpoint's step (atomically) and TensorBoard purges
later events, so no step is ever logged twice and no curve folds back on itself.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import atomic
from ..errors import ConfigError

LOG_FORMATS = ("jsonl", "tensorboard")

# loss.png: one panel per group of terms of one scale (a D collapse or plateau stays visible)
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("discriminator losses", ("d_b", "d_f")),
    ("discriminator logits (real / fake)", ("d_real_b", "d_fake_b", "d_real_f", "d_fake_f")),
    ("generator adversarial", ("b_adv", "f_adv")),
    ("text: L1, skeleton Dice", ("t_l1", "t_dice")),
    ("background / fusion L1", ("b_l1", "f_l1")),
    ("fusion perceptual / style", ("f_perc", "f_style")),
    ("generator total", ("g_total",)),
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut by a crash mid-write
            continue
    return out


def truncate(path: Path, step: int) -> int:
    """Keep the records of steps <= step (atomic rewrite); returns how many were dropped."""
    recs = read_jsonl(path)
    keep = [r for r in recs if r.get("step", 0) <= step]
    if len(keep) != len(recs) or (path.is_file() and len(recs) != len(path.read_text().splitlines())):
        data = "".join(json.dumps(r) + "\n" for r in keep).encode()
        atomic.write_bytes(path, data)
    return len(recs) - len(keep)


def summary_writer():
    """torch's TensorBoard SummaryWriter, or a ConfigError saying how to get it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ConfigError("--log tensorboard (train.log_format) needs the tensorboard package: "
                          "pip install tensorboard, or use --log jsonl") from e
    return SummaryWriter


class RunLog:
    """Appends records to log.jsonl / val.jsonl and, with fmt="tensorboard", to TensorBoard events under tb/."""

    def __init__(self, out: Path, fmt: str, resume_step: int) -> None:
        self.out = out
        self.tb = None
        for name in ("log.jsonl", "val.jsonl"):
            truncate(out / name, resume_step)
        if fmt == "tensorboard":
            SummaryWriter = summary_writer()
            self.tb = SummaryWriter(str(out / "tb"), purge_step=resume_step + 1 if resume_step else None)

    def _append(self, name: str, rec: dict[str, Any]) -> None:
        with open(self.out / name, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")

    def train(self, rec: dict[str, Any]) -> None:
        self._append("log.jsonl", rec)
        if self.tb is not None:
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, rec["step"])
            self.tb.flush()

    def val(self, step: int, table: dict[str, Any]) -> None:
        self._append("val.jsonl", {"step": step, **table})
        if self.tb is not None:
            for group in ("model", "identity", "gain"):
                for k, v in table[group].items():
                    if v is not None:
                        self.tb.add_scalar(f"val_{group}/{k}", v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def plot_losses(log_path: Path, png: Path) -> None:
    """loss.png from log.jsonl: one panel per term group; one point per step (the last record wins)."""
    recs = read_jsonl(log_path)
    if not recs:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_step = {r["step"]: r for r in recs}
    steps = sorted(by_step)
    panels = [(t, [k for k in keys if any(k in by_step[s] for s in steps)]) for t, keys in PANELS]
    panels = [(t, keys) for t, keys in panels if keys]
    cols = 2
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3 * rows), squeeze=False)
    for ax, (title, keys) in zip(axes.flat, panels):
        for k in keys:
            pts = [(s, by_step[s][k]) for s in steps if k in by_step[s]]
            ax.plot(*zip(*pts), label=k)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    with atomic.writing(png) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def save_grid(gen, batch: dict[str, Any], path: Path, device: torch.device, amp_dtype) -> None:
    """A PNG per sample row: i_s, i_t, then each output beside its target (o_sk|t_sk ... o_f|t_f)."""
    from PIL import Image

    from .infer import run_generator, to_uint8

    out = run_generator(gen, batch, device, amp_dtype)

    def rgb(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a

    rows = []
    for j in range(batch["i_s"].shape[0]):
        cells = [batch["i_s"][j].permute(1, 2, 0).numpy(), batch["i_t"][j].permute(1, 2, 0).numpy()]
        for o, t in (("o_sk", "t_sk"), ("o_t", "t_t"), ("o_b", "t_b"), ("o_f", "t_f")):
            cells.append(rgb(to_uint8(out[o][j], signed=o != "o_sk")))
            cells.append(rgb(batch[t][j].permute(1, 2, 0).numpy()))
        sep = np.full((cells[0].shape[0], 4, 3), 40, np.uint8)
        rows.append(np.concatenate([c for cell in cells for c in (cell, sep)], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 40, np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.writing(path) as tmp:
        Image.fromarray(np.concatenate(rows, axis=0)).save(tmp)
