"""Where the bundled pools live: fonts/, backgrounds/, corpora/ and pipelines/.

An installed wheel carries them as package data under textsynth/_assets/ (found through
importlib.resources); a source checkout or editable install finds them at the repository root.
TEXTSYNTH_ASSETS, when set, overrides both.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import TextsynthError

PACKAGE_DATA = "_assets"  # textsynth/_assets/ inside a built wheel (setup.py copies the folders there)


def _candidates() -> list[Path]:
    env = os.environ.get("TEXTSYNTH_ASSETS")
    if env:
        return [Path(env).expanduser()]
    # files() is a plain Path for an installed (unzipped) package
    packaged = Path(str(resources.files("textsynth") / PACKAGE_DATA))
    return [packaged, Path(__file__).resolve().parents[1]]


def asset_root() -> Path:
    """The folder holding fonts/, backgrounds/, corpora/, pipelines/ (TEXTSYNTH_ASSETS overrides)."""
    tried = _candidates()
    for root in tried:
        if (root / "fonts").is_dir():
            return root
    where = " or ".join(str(r / "fonts") for r in tried)
    raise TextsynthError(
        f"bundled assets not found: {where} is missing "
        "(set TEXTSYNTH_ASSETS to the folder holding fonts/, backgrounds/, corpora/ and pipelines/)")


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
