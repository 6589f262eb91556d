"""The one typed-config mechanism: dataclasses built from TOML/JSON/dicts, checked key by key.

Every config in textsynth (the synthesis recipe and its sections, the effect tables, the trainer,
the SRNet model, the losses) is a dataclass deriving from `TypedConfig`. Values are type-checked
against the annotations when read from a file or dict, unknown keys are refused, and each class
checks its own values on construction, so no invalid config object exists. Every failure is one
`ConfigError` naming the dotted key (`config.style.curve_p`, `train.loss.gan`).
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

C = TypeVar("C", bound="TypedConfig")


class TypedConfig:
    """Base of every config dataclass. SECTION is the dotted key its errors name."""

    SECTION: ClassVar[str] = "config"

    def __post_init__(self) -> None:
        self.check(self.SECTION)

    def check(self, path: str) -> None:
        """Raise ConfigError naming `path.<key>` for a value out of range (override per class)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (tuples become lists); `from_dict(to_dict())` round-trips."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls: type[C], data: typing.Mapping[str, Any], path: str | None = None) -> C:
        """Build from nested data; keys left out take their defaults."""
        return build(cls, data, path or cls.SECTION)

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a .toml or .json file; errors name the file and the bad key."""
        p = Path(path)
        data = read_file(p)
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from e

    def replace(self: C, **overrides: Any) -> C:
        """A copy with dotted-key overrides, e.g. replace(**{"style.curve_p": 1.0}), checked like a file."""
        return type(self).from_dict(deep_update(self.to_dict(), nest(overrides)))


def read_file(p: Path) -> dict[str, Any]:
    """The table of a TOML or JSON config file."""
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from e
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'TOML'}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a table/object, got {type(data).__name__}")
    return data


def build(cls: type[C], data: typing.Mapping[str, Any], path: str) -> C:
    """Instantiate `cls` from `data`, coercing each value to its annotated type."""
    if not isinstance(data, typing.Mapping):
        raise ConfigError(f"{path} must be a table/object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key {path}.{unknown[0]} (valid: {', '.join(sorted(names))})")
    return cls(**{k: coerce(v, hints[k], f"{path}.{k}") for k, v in data.items()})


def coerce(value: Any, tp: Any, path: str) -> Any:
    """Convert a JSON/TOML value to the annotated type, naming the key on a mismatch."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        return build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(value, inner, path)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path} must have {len(args)} items, got {list(value)}")
        return tuple(coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover - a schema bug, not bad input


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": 1} -> {"a": {"b": 1}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def deep_update(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """`a` with the nested values of `b` written over it."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out
