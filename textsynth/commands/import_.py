"""`textsynth import`: an SRNet-Datagen folder (labels optional) into an Arrow dataset."""
from __future__ import annotations

import click

from ..pipeline import DEFAULT_SHARD_SIZE
from ..shards import storage
from ..shards.dataset import shard_name, write_dataset_metadata
from ..shards.encodings import ENCODINGS
from ..shards.writer import write_shard
from ..srnet_folder import import_srnet


@click.command("import")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("root")
@click.option("--shard-size", type=click.IntRange(min=1), default=DEFAULT_SHARD_SIZE, show_default=True)
@click.option("--encoding", type=click.Choice(ENCODINGS), default="lz4", show_default=True)
def command(src: str, root: str, shard_size: int, encoding: str) -> None:
    """Convert SRNet-Datagen folder SRC into dataset ROOT."""
    samples = list(import_srnet(src))  # validates the folder up front; images decode lazily
    fs, out = storage.resolve(root)
    storage.ensure_dir(fs, out)
    n_shards = max(1, -(-len(samples) // shard_size))
    infos = [write_shard(storage.join(out, shard_name(k, n_shards)), samples[k * shard_size:(k + 1) * shard_size],
                         encoding) for k in range(n_shards)]
    write_dataset_metadata(fs, out, encoding, infos, complete=True, source={"srnet_folder": src})
    click.echo(f"imported {len(samples)} samples from {src} into {root} ({n_shards} shards)")
