"""`textsynth backgrounds SOURCE...`: what a background pool holds (count, sizes, rejected files and why)."""
from __future__ import annotations

import json

import click
import numpy as np

from ..synth.backgrounds import decode_image
from ..synth.bgindex import Rejected, build_index, read_entry_bytes
from ..errors import BackgroundError


@click.command("backgrounds")
@click.argument("sources", nargs=-1)
@click.option("--bundled/--no-bundled", default=False, show_default=True, help="Include the bundled photos.")
@click.option("--min-side", type=click.IntRange(min=8), default=32, show_default=True,
              help="Images with a shorter side are rejected (background.min_side).")
@click.option("--decode", is_flag=True, help="Also decode every image (finds truncated files; slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(sources: tuple[str, ...], bundled: bool, min_side: int, decode: bool, as_json: bool) -> int:
    """Index SOURCES (folders, globs, list files, s3://... prefixes) as generate would and report it."""
    if not sources and not bundled:
        raise BackgroundError("name at least one SOURCE (folder, glob, list file or URI), or --bundled")
    entries, rejected = build_index(bundled, sources, min_side)
    if decode:
        kept = []
        for e in entries:
            try:
                decode_image(read_entry_bytes(e), e.path, min_side)
                kept.append(e)
            except BackgroundError as err:
                rejected.append(Rejected(e.path, str(err).replace(f": {e.path}", "")))
        entries = kept
    sizes = np.array([[e.width, e.height] for e in entries]).reshape(-1, 2)
    short = sizes.min(axis=1) if len(sizes) else np.zeros(0)
    report = {
        "images": len(entries), "bytes": int(sum(e.bytes for e in entries)),
        "short_side": ({"min": int(short.min()), "median": int(np.median(short)), "max": int(short.max())}
                       if len(short) else None),
        "megapixels_total": round(float((sizes[:, 0] * sizes[:, 1]).sum()) / 1e6, 2),
        "rejected": [{"path": r.path, "reason": r.reason} for r in rejected],
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        ss = report["short_side"]
        click.echo(f"{report['images']} usable images, {report['bytes'] / 2**20:,.1f} MiB, "
                   f"{report['megapixels_total']:,} MP" + (
                       f", short side min/median/max {ss['min']}/{ss['median']}/{ss['max']} px" if ss else ""))
        click.echo(f"{len(rejected)} rejected")
        for r in rejected:
            click.echo(f"  {r.path}: {r.reason}")
    return 0 if entries else 1
