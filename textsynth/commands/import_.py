"""`textsynth import`: an SRNet-Datagen folder (labels optional) into an Arrow dataset."""
from __future__ import annotations

import click

from ..generate import DEFAULT_SHARD_SIZE
from ..interop.folder_import import import_folder
from ..shards.encodings import ENCODINGS
from ..interop.srnet_folder import FolderTree


@click.command("import")
@click.argument("src")
@click.argument("root")
@click.option("--shard-size", type=click.IntRange(min=1), default=DEFAULT_SHARD_SIZE, show_default=True)
@click.option("--encoding", type=click.Choice(ENCODINGS), default="lz4", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes (default: CPU count).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Import only the first N samples.")
@click.option("--overwrite", is_flag=True, help="Replace the dataset already at ROOT (only its listed files).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(src: str, root: str, shard_size: int, encoding: str, workers: int | None, limit: int | None,
            overwrite: bool, quiet: bool) -> None:
    """Convert SRNet-Datagen folder SRC into dataset ROOT (each a folder or an s3://... URI).

    The folder is checked before anything is written; samples are then decoded one at a time, a
    shard per task, so memory does not grow with the folder."""
    r = import_folder(src, root, shard_size=shard_size, encoding=encoding, workers=workers, limit=limit,
                      overwrite=overwrite, progress=False if quiet else None)
    resumed = f", {r.reused_shards} resumed" if r.reused_shards else ""
    shown = FolderTree(src).shown(), FolderTree(root).shown()  # URIs without credentials or query
    click.echo(f"imported {r.count} samples from {shown[0]} into {shown[1]} ({r.shards} shards{resumed})")
