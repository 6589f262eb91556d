"""Named recipes in pipelines/ and the --config/--pipeline/--lang resolution shared by commands."""
from __future__ import annotations

from pathlib import Path

from . import config as cfgmod
from .assets import asset_root
from .config import SynthConfig
from .errors import ConfigError


def pipelines_dir() -> Path:
    return asset_root() / "pipelines"


def available() -> list[str]:
    return sorted(p.stem for p in pipelines_dir().glob("*.toml"))


def load(config: str | None = None, pipeline: str | None = None, seed: int | None = None,
         lang: str | None = None) -> SynthConfig:
    """The recipe a command runs: a config file, or a named pipeline, or the defaults; then overrides."""
    if config and pipeline:
        raise ConfigError("give --config or --pipeline, not both")
    if config:
        cfg = cfgmod.load(config)
    elif pipeline:
        path = pipelines_dir() / f"{pipeline}.toml"
        if not path.is_file():
            raise ConfigError(f"unknown pipeline {pipeline!r} (available: {', '.join(available())})")
        cfg = cfgmod.load(path)
    else:
        cfg = SynthConfig()
    overrides = {}
    if seed is not None:
        overrides["seed"] = seed
    if lang is not None:
        overrides["corpus.lang"] = lang
    return cfg.replace(**overrides) if overrides else cfg
