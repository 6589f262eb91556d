"""Config value checks shared by the recipe's sections and the effect modules' own config fields."""
from __future__ import annotations

from .errors import ConfigError


def check_prob(v: float, path: str) -> None:
    if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ConfigError(f"{path} must be a probability in [0, 1], got {v!r}")


def check_range(v: tuple, path: str, lo: float, hi: float) -> None:
    if len(v) != 2 or not lo <= v[0] <= v[1] <= hi:
        raise ConfigError(f"{path} must be [low, high] with {lo} <= low <= high <= {hi}, got {list(v)}")


def check_fields(cfg, path: str, lo: float = 0.0, hi: float = 100.0) -> None:
    """Probabilities (names ending in p) and [low, high] ranges of a flat effect config."""
    import dataclasses

    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.name == "p" or f.name.endswith("_p"):
            check_prob(v, f"{path}.{f.name}")
        elif isinstance(v, tuple):
            check_range(v, f"{path}.{f.name}", lo, hi)
