"""What readers check before trusting a dataset: the manifest agrees with itself and with the folder,
and every shard's identity metadata names the shard the manifest expects at that place.

Manifests written by a finished `generate` say `complete: true`; an interrupted one says `complete:
false` and lists only the shards that landed. Readers refuse those, and manifests whose arithmetic or
shard names do not add up, unless asked for the partial data (`allow_partial`). A manifest without a
`fingerprint` (older datasets, imports) skips the fingerprint comparison; index and total are still
checked against the shard's file name whenever the shard carries an identity.
"""
from __future__ import annotations

import posixpath
import re
import warnings
from typing import Any, Mapping

import pyarrow.fs as pafs

from textsynth.errors import IncompleteDatasetError, ShardIdentityError

SHARD_NAME_RE = re.compile(r"^data-(\d{5,})-of-(\d{5,})\.arrow$")


def _name_slot(file: str) -> tuple[int, int] | None:
    m = SHARD_NAME_RE.match(file)
    return (int(m.group(1)), int(m.group(2))) if m else None


def is_partial(manifest: Mapping[str, Any]) -> bool:
    """Whether the manifest marks its dataset incomplete (a generate run that has not finished)."""
    return manifest.get("complete") is False


def manifest_problems(manifest: Mapping[str, Any], where: str) -> list[str]:
    """Ways a (schema-valid) manifest disagrees with itself: row total, shard count, shard names and order.

    An incomplete manifest (complete: false) is judged as a partial list: names must agree on the
    total and be in order, but shards may be missing.
    """
    shards = manifest["shards"]
    partial = is_partial(manifest)
    problems = []
    total_rows = sum(int(e["rows"]) for e in shards)
    if manifest.get("rows") != total_rows:
        problems.append(f"{where}: rows {manifest.get('rows')!r} but its shards hold {total_rows}")
    expected_total = manifest.get("num_shards")
    if expected_total is not None and not partial and expected_total != len(shards):
        problems.append(f"{where}: num_shards {expected_total!r} but {len(shards)} shard(s) listed")
    slots = [_name_slot(e["file"]) for e in shards]
    totals = sorted({s[1] for s in slots if s is not None})
    if len(totals) > 1:
        problems.append(f"{where}: shard names disagree on the shard count ({', '.join(map(str, totals))})")
    elif totals and not partial and totals[0] != len(shards):
        problems.append(f"{where}: shard names say {totals[0]} shards but {len(shards)} are listed "
                        "(a shard was dropped from the manifest?)")
    last = -1
    for n, (e, slot) in enumerate(zip(shards, slots)):
        if slot is None:
            continue
        if (not partial and slot[0] != n) or slot[0] <= last:
            problems.append(f"{where}: shards[{n}] is {e['file']} (out of order, or shards missing before it)")
            break
        last = slot[0]
    return problems


def readable_entries(fs: pafs.FileSystem, root: str, manifest: Mapping[str, Any], where: str,
                     allow_partial: bool = False) -> list[dict[str, Any]]:
    """The manifest's shard entries a reader may use; IncompleteDatasetError naming the dataset if it is
    incomplete, disagrees with itself, or lists a shard file that is not there (unless allow_partial,
    which warns and keeps the listed shards that exist)."""
    entries = list(manifest["shards"])
    problems = []
    if is_partial(manifest):
        total = manifest.get("num_shards", "?")
        problems.append(f"{where}: incomplete dataset ({len(entries)} of {total} shards landed; complete: false)")
    problems += manifest_problems(manifest, where)
    present = _listed_files(fs, root)
    missing = [e["file"] for e in entries if present is not None and e["file"] not in present]
    if missing:
        problems.append(f"{where}: lists shard file(s) missing from {root}: {', '.join(missing[:5])}"
                        + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    if not problems:
        return entries
    if not allow_partial:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise IncompleteDatasetError(
            f"{problems[0]}{more}; finish it with the same generate command or run `textsynth verify`, or read "
            "only what is there with allow_partial=True / --allow-partial (stream=True follows a dataset "
            "still being written)")
    warnings.warn(f"reading partial data: {'; '.join(problems)}", RuntimeWarning, stacklevel=3)
    return [e for e in entries if e["file"] not in missing]


def _listed_files(fs: pafs.FileSystem, root: str) -> set[str] | None:
    """Names of the files directly under root (one listing, also on object stores); None if it cannot list."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except OSError:
        return None
    return {posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.File}


def identity_problem(identity: Mapping[str, Any] | None, manifest: Mapping[str, Any] | None, file: str,
                     position: int, count: int, path: str) -> str | None:
    """Why shard `file` (listed at `position` of `count`) is not the one its manifest expects, or None.

    The expected index/total come from the file name (data-K-of-N), else from the position in the list.
    """
    fingerprint = manifest.get("fingerprint") if manifest is not None else None
    if identity is None:
        if fingerprint is not None:
            return (f"{path}: shard has no identity metadata but the manifest's dataset has fingerprint "
                    f"{fingerprint} (a foreign or older shard)")
        return None
    if fingerprint is not None and identity["fingerprint"] != fingerprint:
        return (f"{path}: shard belongs to dataset {identity['fingerprint']}, the manifest's fingerprint is "
                f"{fingerprint} (a foreign shard)")
    index, total = _name_slot(file) or (position, count)
    if (identity["index"], identity["total"]) != (index, total):
        return (f"{path}: holds shard {identity['index']} of {identity['total']}, expected shard {index} of {total} "
                "(shard files swapped or renamed?)")
    return None


def check_identity(identity: Mapping[str, Any] | None, manifest: Mapping[str, Any] | None, file: str,
                   position: int, count: int, path: str) -> None:
    """identity_problem as an exception: ShardIdentityError naming the shard."""
    problem = identity_problem(identity, manifest, file, position, count, path)
    if problem is not None:
        raise ShardIdentityError(problem)
