"""`textsynth edit`: replace the text of a crop (or of every sample of a dataset) with a trained SRNet."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np


@click.command("edit")
@click.option("--checkpoint", required=True, type=click.Path(exists=True), help="ckpt-* folder or run folder.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), default=None, help="RGB text crop.")
@click.option("--text", default=None, help="The word to write (with --image).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Output PNG (with --image).")
@click.option("--dataset", default=None, help="Batch mode: edit every sample of this dataset to its text_t.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None, help="Batch mode output folder.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Batch mode: at most this many samples.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--allow-partial", is_flag=True, help="Read an incomplete or inconsistent dataset's usable shards (warns).")
def command(checkpoint, image, text, out, dataset, out_dir, limit, device, allow_partial) -> None:
    """Edit one crop (--image --text --out) or a dataset (--dataset --out-dir)."""
    from PIL import Image

    from ..srnet.infer import edit_crop, edit_pair, load_generator

    if bool(image) == bool(dataset):
        raise click.UsageError("give either --image (with --text, --out) or --dataset (with --out-dir)")
    gen = load_generator(checkpoint, device)
    if image:
        if not text or not out:
            raise click.UsageError("--image needs --text and --out")
        from ..config import FontConfig
        from ..fonts import FontPool

        try:
            crop = np.asarray(Image.open(image).convert("RGB"))
        except OSError as e:
            raise click.BadParameter(f"cannot read image {image}: {e}") from e
        res = edit_crop(gen, crop, text, FontPool.from_config(FontConfig()))
        Image.fromarray(res["o_f"]).save(out)
        click.echo(f"wrote {out} ({crop.shape[1]}x{crop.shape[0]})")
        return
    if not out_dir:
        raise click.UsageError("--dataset needs --out-dir")
    from ..shards.dataset import Dataset

    ds = Dataset(dataset, allow_partial=allow_partial)
    dest = Path(out_dir)
    dest.mkdir(parents=True, exist_ok=True)
    n = min(len(ds), limit or len(ds))
    for i in range(n):
        s = ds[i]
        res = edit_pair(gen, s.images["i_s"], s.images["i_t"])
        Image.fromarray(np.concatenate([s.images["i_s"], res["o_f"]], axis=0)).save(dest / f"{s.meta['id']}.png")
    click.echo(f"wrote {n} edits (source above, output below) to {dest}")
