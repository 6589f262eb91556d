"""Where the bundled pools live: fonts/, backgrounds/, corpora/ and pipelines/ at the repo root."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import TextsynthError


def asset_root() -> Path:
    """The folder holding fonts/, backgrounds/, corpora/; TEXTSYNTH_ASSETS overrides the repo root."""
    env = os.environ.get("TEXTSYNTH_ASSETS")
    root = Path(env) if env else Path(__file__).resolve().parents[1]
    if not (root / "fonts").is_dir():
        raise TextsynthError(
            f"bundled assets not found: {root / 'fonts'} is missing "
            "(set TEXTSYNTH_ASSETS to the folder holding fonts/, backgrounds/ and corpora/)")
    return root


def expand_paths(paths: tuple[str, ...] | list[str], suffixes: tuple[str, ...]) -> list[Path]:
    """Files named directly, plus files with the given suffixes found under named folders (sorted)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in suffixes))
        else:
            out.append(p)  # missing files are reported by the loader, naming them
    return out
