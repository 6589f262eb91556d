"""What an output folder already holds for a plan: shards to adopt, content to refuse, files an
--overwrite removes, and the temp names textsynth writes (removable only under the dataset lock)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ShardError, ShardSchemaError, TextsynthError
from ..fingerprint import PARTS, differences
from ..shards import storage
from ..shards.dataset import DATASET_INFO_NAME, MANIFEST_NAME, STATE_NAME, read_manifest, sha256_of, shard_name
from ..shards.lock import LOCK_NAME
from ..shards.reader import ShardReader
from ..shards.schema import parse_identity
from .plan import Plan

_OWN_TEMP_RE = re.compile(r"^(\.(data-\d{5,}-of-\d{5,}\.arrow|textsynth\.json|state\.json|dataset_info\.json)"
                          r"\.tmp-[0-9A-Za-z]+|\.textsynth-probe-[0-9a-f]+)$")


def is_own_temp(name: str) -> bool:
    """True for the hidden temp names textsynth itself writes into a dataset folder."""
    return bool(_OWN_TEMP_RE.match(name))


def shard_identity(fs, path: str) -> dict | None:
    """The b"textsynth.shard" identity in a shard's Arrow schema (None if absent or unreadable)."""
    import pyarrow as pa

    try:
        with fs.open_input_stream(path) as f:
            schema = pa.ipc.open_stream(f).schema
        return parse_identity(schema, path)
    except (OSError, pa.ArrowInvalid, ShardSchemaError):
        return None


@dataclass
class Survey:
    """What an output folder holds for this plan: shards to keep, files an --overwrite removes."""

    landed: dict[int, dict] = field(default_factory=dict)
    doomed: list[str] = field(default_factory=list)


def survey(plan: Plan, fs, root: str, fingerprint: str, parts: dict, overwrite: bool) -> Survey:
    """Decide, touching nothing, which shards of `root` this run keeps and what --overwrite would remove.

    A folder with a manifest of another fingerprint is refused (naming what differs) unless --overwrite;
    a non-empty folder that is not a textsynth dataset is always refused; a shard is adopted only if
    its schema names this fingerprint and its index.
    """
    import pyarrow.fs as pafs

    where = storage.redact(plan.out)
    names = {shard_name(k, plan.num_shards): k for k in range(plan.num_shards)}
    listing = {i.base_name: i.size for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
               if i.type == pafs.FileType.File}
    out = Survey()
    manifest = read_manifest(fs, root) if MANIFEST_NAME in listing else None
    listed: set[str] = set()
    if manifest is not None:
        listed = {e["file"] for e in manifest["shards"]}
        if manifest.get("fingerprint") != fingerprint:
            if not overwrite:
                old = {k: manifest.get(k) for k in PARTS}
                raise TextsynthError(f"{where} holds a dataset made with a different "
                                     f"{'; '.join(differences(old, parts))}; "
                                     "use another --out, or --overwrite to replace it")
            out.doomed = sorted(n for n in listing if n in listed or is_own_temp(n)
                                or n in (MANIFEST_NAME, DATASET_INFO_NAME, STATE_NAME))
            return out
    foreign: list[str] = []
    for name, size in sorted(listing.items()):
        if name == LOCK_NAME or is_own_temp(name):
            continue
        if manifest is not None and name in (MANIFEST_NAME, DATASET_INFO_NAME, STATE_NAME):
            continue
        k = names.get(name)
        if k is None:
            if manifest is None:
                foreign.append(name)  # a user's file (or a shard of another layout) in a non-dataset folder
            continue
        ident = shard_identity(fs, storage.join(root, name))
        at = storage.redact(storage.join(plan.out, name))
        if ident is None:
            if manifest is None:
                foreign.append(name)
            elif not overwrite:
                raise TextsynthError(f"{at} carries no textsynth shard identity (not written by this "
                                     "textsynth, or corrupt); --overwrite renders it again")
            continue
        if ident != {"fingerprint": fingerprint, "index": k, "total": plan.num_shards}:
            if overwrite:
                continue  # rendered again: the rename replaces it
            if ident.get("fingerprint") != fingerprint:
                what = f"fingerprint {str(ident.get('fingerprint'))[:12]}, this run's {fingerprint[:12]}"
                raise TextsynthError(f"{at} was written by a run with another recipe, seed or assets "
                                     f"({what}); use another --out, or --overwrite to render it again")
            raise TextsynthError(f"{at} holds shard {ident.get('index')} of {ident.get('total')}, "
                                 f"not {k} of {plan.num_shards} (files swapped?); --overwrite renders it again")
        start, stop = plan.shard_range(k)
        entry = next((e for e in manifest["shards"] if e["file"] == name), None) if manifest else None
        if entry is not None and entry["bytes"] == size and entry["rows"] == stop - start:
            out.landed[k] = entry
            continue
        # landed after the driver's last manifest write (killed in between): adopt it if it reads back whole
        try:
            reader = ShardReader(storage.join(root, name), fs)
            rows = len(reader)
            reader.close()
        except ShardError:
            continue  # corrupt: rendered again (the atomic rename replaces it)
        if rows == stop - start:
            out.landed[k] = {"file": name, "rows": rows, "bytes": size, "sha256": sha256_of(fs, storage.join(root, name))}
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TextsynthError(f"{where} is not empty and is not a textsynth dataset (it holds {shown}); "
                             "give an empty or new folder")
    return out


def delete(fs, root: str, names: list[str]) -> None:
    """Remove these files of `root` (already gone is fine)."""
    for name in names:
        try:
            fs.delete_file(storage.join(root, name))
        except FileNotFoundError:
            pass


def remove_stale_temps(fs, root: str) -> None:
    """Temp files of shards whose writer died; only called while this run holds the dataset lock."""
    import pyarrow.fs as pafs

    delete(fs, root, [i.base_name for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
                       if i.type == pafs.FileType.File and is_own_temp(i.base_name)])
