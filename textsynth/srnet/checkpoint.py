"""Atomic, complete, pickle-free checkpoints: safetensors for every tensor, JSON for everything else.

A checkpoint is a folder `ckpt-0000100/` holding gen/d_b/d_f weights, optimiser tensors, RNG states
(safetensors) and `state.json` (step, data position, configs, optimiser hyper-parameters). It is
written as a hidden temp folder and renamed into place; `latest` names the newest complete one.
Loading never unpickles, so a checkpoint from anywhere is safe to open.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import atomic
from ..errors import TextsynthError


class CheckpointError(TextsynthError):
    """A checkpoint folder is missing, incomplete or does not match the model."""


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{name}.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}."
    for key, v in tensors.items():
        if key.startswith(prefix):
            idx, k = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[k] = v
    for idx, extra in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(extra)
    return {"state": state, "param_groups": meta["param_groups"]}


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside torch.compile and DistributedDataParallel wrappers."""
    while True:
        inner = getattr(m, "_orig_mod", None) or getattr(m, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return m
        m = inner


def clean_temps(run_dir: Path) -> list[Path]:
    """Remove checkpoint temp folders/files left by a crash during a save (any pid). Returns them."""
    gone = [p for p in Path(run_dir).glob(".ckpt-*.tmp-*")] + [p for p in Path(run_dir).glob(".latest.tmp*")]
    for p in gone:
        atomic.discard(p)
    return gone


def save(run_dir: Path, step: int, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
         state: dict[str, Any], keep: int = 3, device: torch.device | None = None) -> Path:
    """Write checkpoint `step` atomically; prune all but the newest `keep`. Returns its folder.

    RNG state: the CPU generator and, on CUDA, this process's own GPU only (reading every GPU's state
    would open a CUDA context on each of them).
    """
    run_dir = Path(run_dir)
    final = run_dir / f"ckpt-{step:07d}"
    tmp = atomic.temp_dir_for(final)
    for name, m in modules.items():
        m = _unwrap(m)
        save_file({k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}, str(tmp / f"{name}.safetensors"))
    opt_tensors: dict[str, torch.Tensor] = {}
    opt_meta: dict[str, Any] = {}
    for name, opt in optimizers.items():
        t, meta = _flatten_optimizer(name, opt)
        opt_tensors.update(t)
        opt_meta[name] = meta
    rng = {"torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    save_file(opt_tensors, str(tmp / "optim.safetensors"))
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizers": opt_meta}, indent=1))
    atomic.commit(tmp, final)
    atomic.write_text(run_dir / "latest", final.name + "\n")
    for old in sorted(run_dir.glob("ckpt-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = Path(run_dir) / "latest"
    if not pointer.is_file():
        return None
    path = Path(run_dir) / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def read_state(ckpt: Path) -> dict[str, Any]:
    ckpt = find(ckpt)
    try:
        state = json.loads((ckpt / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"unreadable checkpoint state {ckpt / 'state.json'}: {e}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{ckpt / 'state.json'}: expected a JSON object")
    return state


def state_value(ckpt: Path, state: dict[str, Any], *keys: str) -> Any:
    """state["a"]["b"]..., or a CheckpointError naming the missing key and the file."""
    v: Any = state
    for i, k in enumerate(keys):
        if not isinstance(v, dict) or k not in v:
            raise CheckpointError(f"{find(ckpt) / 'state.json'} lacks the key {'.'.join(keys[:i + 1])!r} "
                                  f"(not a textsynth SRNet checkpoint, or a damaged one)")
        v = v[k]
    return v


def find(path: Path | str) -> Path:
    """A checkpoint folder, or a run folder (its latest checkpoint)."""
    p = Path(path)
    if (p / "state.json").is_file():
        return p
    found = latest(p)
    if found is None:
        raise CheckpointError(f"no checkpoint at {p} (expected a ckpt-* folder or a run folder with 'latest')")
    return found


def load_module(ckpt: Path, name: str, module: torch.nn.Module) -> None:
    path = find(ckpt) / f"{name}.safetensors"
    try:
        sd = load_file(str(path))
    except (OSError, Exception) as e:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read weights {path}: {e}") from e
    target = _unwrap(module).state_dict()
    for k, v in sd.items():
        if k in target and tuple(v.shape) != tuple(target[k].shape):
            raise CheckpointError(f"{path} does not match the model: {k} has shape {tuple(v.shape)}, the model "
                                  f"(config in {path.parent / 'state.json'}) needs {tuple(target[k].shape)}")
    missing, unexpected = _unwrap(module).load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def load_training(ckpt: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                  device: torch.device | None = None) -> dict[str, Any]:
    """Restore weights, optimiser and RNG state; returns state.json (step, data position, ...)."""
    ckpt = find(ckpt)
    state = read_state(ckpt)
    for name, m in modules.items():
        load_module(ckpt, name, m)
    opt_tensors = load_file(str(ckpt / "optim.safetensors"))
    for name, opt in optimizers.items():
        opt.load_state_dict(_unflatten_optimizer(name, opt_tensors, state["optimizers"][name]))
    rng = load_file(str(ckpt / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if device is not None and device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
    return state
