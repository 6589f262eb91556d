"""`textsynth export`: a dataset into the SRNet-Datagen folder layout existing training code reads."""
from __future__ import annotations

import click

from ..srnet_folder import export_srnet


@click.command("export")
@click.argument("root")
@click.option("--format", "fmt", type=click.Choice(["srnet", "parquet"]), default="srnet", show_default=True)
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--allow-partial", is_flag=True, help="Read an incomplete or inconsistent dataset's usable shards (warns).")
def command(root: str, fmt: str, out: str, allow_partial: bool) -> None:
    """Write ROOT's samples as i_s/ i_t/ t_sk/ t_t/ t_b/ t_f/ mask_t/ mask_s/ PNGs plus label files in OUT
    (srnet), or as one Parquet file per shard (parquet)."""
    if fmt == "parquet":  # one file per shard, images as PNG in HF's Image struct (textsynth/parquet_export.py)
        from ..parquet_export import export_parquet

        click.echo(f"exported {export_parquet(root, out)} samples to {out} (parquet, one file per shard)")
        return
    n = export_srnet(root, out, allow_partial=allow_partial)
    click.echo(f"exported {n} samples to {out} ({fmt} layout; labels in i_s.txt / i_t.txt)")
