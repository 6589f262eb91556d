"""`textsynth export`: a dataset into folder layouts existing training code reads."""
from __future__ import annotations

import click

from ..interop.folder_export import export_dataset

# --format -> how to export; each takes (root, out, fmt, options) and returns a one-line summary
LAYOUTS = {
    "srnet": "SRNet-Datagen folders + MOSTEL txt/ + label files",
    "srnet-predict": "flat NAME_i_s.png / NAME_i_t.png pairs",
    "parquet": "one Parquet file per shard",
}


def _folder(root: str, out: str, fmt: str, opts: dict) -> str:
    r = export_dataset(root, out, fmt, workers=opts["workers"], limit=opts["limit"], overwrite=opts["overwrite"],
                       glyph_masks=opts["glyph_masks"], progress=None if not opts["quiet"] else False,
                       allow_partial=opts["allow_partial"])
    resumed = f", {r.reused_shards} shard(s) resumed" if r.reused_shards else ""
    return f"exported {r.count} samples to {r.out} ({fmt}: {LAYOUTS[fmt]}{resumed})"


def _parquet(root: str, out: str, fmt: str, opts: dict) -> str:
    from ..interop.parquet_export import export_parquet  # one file per shard, images as PNG in HF's Image struct

    return f"exported {export_parquet(root, out)} samples to {out} (parquet, one file per shard)"


EXPORTERS = {"srnet": _folder, "srnet-predict": _folder, "parquet": _parquet}


@click.command("export")
@click.argument("root")
@click.option("--format", "fmt", type=click.Choice(sorted(EXPORTERS)), default="srnet", show_default=True)
@click.argument("out")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes (default: CPU count).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Export only the first N samples.")
@click.option("--overwrite", is_flag=True, help="Replace a previous textsynth export in OUT (only its files).")
@click.option("--glyph-masks", is_flag=True,
              help="mask_t/mask_s as soft glyph alpha without border/shadow (the reference generator's), "
                   "re-rendered from each sample's metadata.")
@click.option("--allow-partial", is_flag=True, help="Read an incomplete or inconsistent dataset's usable shards (warns).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(root: str, fmt: str, out: str, **opts) -> None:
    """Write dataset ROOT (folder or URI) into OUT (folder or object-store prefix) in layout --format."""
    click.echo(EXPORTERS[fmt](root, out, fmt, opts))
