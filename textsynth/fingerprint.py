"""A dataset's identity: resolved config, seed, count, shard size, encoding, format version and the
sha256 of every font, background and corpus file the recipe reads; one hex digest names it all."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .assets import asset_root, expand_paths
from .config import SynthConfig

PARTS = ("shard_format", "config", "seed", "count", "shard_size", "encoding", "assets")


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def asset_files(cfg: SynthConfig) -> list[tuple[str, str, Path]]:
    """(kind, name, path) of every font and corpus file the recipe's pools read, in the pools' own order
    (backgrounds come from the pool's index, which already holds their hashes: background_digests)."""
    from .synth.corpus import BUNDLED
    from .synth.fonts import FONT_SUFFIXES

    out: list[tuple[str, str, Path]] = []

    def bundled(kind: str, folder: str, files: list[str]) -> None:
        root = asset_root() / folder
        out.extend((kind, f"{folder}/{f}", root / f) for f in files)

    if cfg.fonts.bundled:
        manifest = json.loads((asset_root() / "fonts" / "manifest.json").read_text(encoding="utf-8"))
        bundled("font", "fonts", [e["file"] for e in manifest["fonts"]])
    out += [("font", str(p), p) for p in expand_paths(cfg.fonts.extra, FONT_SUFFIXES)]
    out += [("font", str(Path(p)), Path(p)) for p in (cfg.fonts.standard_latin, cfg.fonts.standard_han) if p]
    if cfg.corpus.files:
        out += [("corpus", str(Path(f)), Path(f)) for f in cfg.corpus.files]
    else:
        langs = ("en", "zh") if cfg.corpus.lang == "mixed" else (cfg.corpus.lang,)
        bundled("corpus", "corpora", [BUNDLED[lang] for lang in langs])
    return out


MAX_LISTED_BACKGROUNDS = 1000  # larger pools enter the fingerprint as one digest, keeping manifests small


def background_digests(pool: Any) -> list[dict[str, str]]:
    """The background pool's part of the assets: one entry per image, or one for the whole index when
    it is larger than MAX_LISTED_BACKGROUNDS (a pool of 100k photos would bloat every manifest write)."""
    hashes = pool.content_hashes()
    if len(hashes) <= MAX_LISTED_BACKGROUNDS:
        return [{"kind": "background", "name": n, "sha256": h} for n, h in hashes]
    fp = pool.fingerprint()
    return [{"kind": "background-pool", "name": f"{fp['images']} images", "sha256": fp["sha256"]}]


def asset_digests(cfg: SynthConfig, backgrounds: Any = None) -> list[dict[str, str]]:
    """[{"kind", "name", "sha256"}] of every asset the recipe uses: fonts and corpora hashed from their files
    (unreadable ones are skipped: loading the pools reports them, naming the file), backgrounds from the
    pool's index (built from the config when not given)."""
    if backgrounds is None:
        from .synth.backgrounds import BackgroundPool

        backgrounds = BackgroundPool.from_config(cfg.background)
    out = background_digests(backgrounds)
    for kind, name, path in asset_files(cfg):
        try:
            out.append({"kind": kind, "name": name, "sha256": _sha256_file(path)})
        except OSError:
            continue
    return out


def identity_parts(cfg: SynthConfig, count: int, shard_size: int, encoding: str,
                   assets: list[dict[str, str]] | None = None, backgrounds: Any = None) -> dict[str, Any]:
    """Everything a dataset's bytes depend on, as plain JSON data."""
    from .shards.schema import FORMAT_VERSION

    return {"shard_format": FORMAT_VERSION, "config": cfg.to_dict(), "seed": cfg.seed, "count": count,
            "shard_size": shard_size, "encoding": encoding,
            "assets": asset_digests(cfg, backgrounds) if assets is None else assets}


def dataset_fingerprint(parts: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of identity_parts(...)."""
    blob = json.dumps({k: parts.get(k) for k in PARTS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two identity_parts dicts, in words ("seed 5 -> 6", "corpus words.txt changed")."""
    out: list[str] = []
    for key in ("shard_format", "seed", "count", "shard_size", "encoding"):
        if old.get(key) != new.get(key):
            out.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    a, b = _flat(old.get("config") or {}), _flat(new.get("config") or {})
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k != "seed")
    if changed:
        out.append("config " + ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else ""))
    if old.get("assets") is None:
        out.append("assets (the dataset records no asset hashes: written by an older textsynth or by import)")
        return out
    olds = {(x["kind"], x["name"]): x["sha256"] for x in old.get("assets") or []}
    news = {(x["kind"], x["name"]): x["sha256"] for x in new.get("assets") or []}
    for kind, name in sorted(set(olds) | set(news)):
        if (kind, name) not in news:
            out.append(f"{kind} {name} no longer used")
        elif (kind, name) not in olds:
            out.append(f"{kind} {name} newly used")
        elif olds[(kind, name)] != news[(kind, name)]:
            out.append(f"{kind} {name} changed")
    return out or ["fingerprint differs"]
