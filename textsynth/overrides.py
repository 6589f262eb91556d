"""Command-line config overrides: `--set key=value` typed by the config schema, plus the shortcut flags.

Values are read as TOML values (`0.5`, `true`, `[0.1, 0.3]`, `"text"`); a bare word for a string key
and `a,b` for a list key are accepted too. The result goes through the same coercion and validation
as a config file, so every error names the dotted key.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from typing import Any

from .config import SynthConfig
from .errors import ConfigError


def field_type(key: str) -> Any:
    """The annotated type of dotted `key` in SynthConfig; ConfigError naming an unknown key."""
    cls: Any = SynthConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"unknown config key {key!r}: {'.'.join(parts[:i])} is not a table")
        hints = typing.get_type_hints(cls)
        if part not in hints:
            valid = ", ".join(f.name for f in dataclasses.fields(cls))
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"unknown config key {key!r} (valid under {where}: {valid})")
        cls = hints[part]
    if dataclasses.is_dataclass(cls):
        raise ConfigError(f"config key {key!r} is a table: set one of its keys, e.g. {key}.{dataclasses.fields(cls)[0].name}")
    return cls


def _parse_value(raw: str, tp: Any) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if tp is str:
        return raw
    if typing.get_origin(tp) is tuple:
        items = [s.strip() for s in raw.split(",")] if raw.strip() else []
        args = typing.get_args(tp)
        return [_parse_value(s, args[0] if args else str) for s in items]
    return raw  # let the schema coercion reject it, naming the key


def parse_set(item: str) -> tuple[str, Any]:
    """`key=value` -> (key, typed value); ConfigError naming the key when it is unknown."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    return key, _parse_value(raw.strip(), field_type(key))


def collect(sets: tuple[str, ...] = (), fonts: tuple[str, ...] = (), backgrounds: tuple[str, ...] = (),
            corpus: tuple[str, ...] = (), lang: str | None = None, height: int | None = None) -> dict[str, Any]:
    """Dotted-key overrides from the command-line flags (shortcuts first, then --set in order)."""
    out: dict[str, Any] = {}
    if fonts:  # a user pool replaces the bundled fonts, as SynthTIGER/TRDG font folders do
        out["fonts.bundled"] = False
        out["fonts.extra"] = [os.path.abspath(p) for p in fonts]
    if backgrounds:
        out["background.bundled"] = False
        out["background.extra"] = [os.path.abspath(p) for p in backgrounds]
    if corpus:
        out["corpus.files"] = [os.path.abspath(p) for p in corpus]
    if lang is not None:
        out["corpus.lang"] = lang
    if height is not None:
        out["render.height"] = height
    for item in sets:
        key, value = parse_set(item)
        out[key] = value
    return out


def apply(cfg: SynthConfig, overrides: dict[str, Any]) -> SynthConfig:
    """`cfg` with the dotted-key overrides applied and validated; errors name the key."""
    if not overrides:
        return cfg
    try:
        return cfg.replace(**overrides)
    except ConfigError as e:
        raise ConfigError(f"override: {e}") from e
