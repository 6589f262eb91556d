"""`textsynth edit`: replace the text of a crop (or of every sample of a dataset) with a trained SRNet."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .. import atomic
from ..errors import TextsynthError

MAX_CROP_PIXELS = 4096 * 4096  # a text crop; larger is a mistake (and would take minutes and gigabytes)


class EditInputError(TextsynthError):
    """An input or output path of `edit` cannot be used; the message names it."""


def _check_out(out: str) -> None:
    """Before any work: the output's folder exists and PIL can write its extension."""
    from PIL import Image

    p = Path(out)
    if not p.parent.is_dir():
        raise EditInputError(f"--out {out}: folder {p.parent} does not exist")
    ext = p.suffix.lower()
    if ext not in Image.registered_extensions() or Image.registered_extensions()[ext] not in Image.SAVE:
        raise EditInputError(f"--out {out}: unknown image extension {ext or '(none)'!r} (use .png, .jpg, .webp, ...)")


def _read_crop(image: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(image) as im:
            w, h = im.size
            if w * h > MAX_CROP_PIXELS:
                raise EditInputError(f"--image {image}: {w}x{h} pixels is too large for a text crop "
                                     f"(at most {MAX_CROP_PIXELS:,} pixels; crop the text region first)")
            return np.asarray(im.convert("RGB"))
    except EditInputError:
        raise
    except Image.DecompressionBombError as e:
        raise EditInputError(f"--image {image}: too large for a text crop ({e})") from e
    except (OSError, ValueError) as e:
        raise EditInputError(f"--image {image}: cannot read the image ({e})") from e


@click.command("edit")
@click.option("--checkpoint", required=True, type=click.Path(exists=True), help="ckpt-* folder or run folder.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), default=None, help="RGB text crop.")
@click.option("--text", default=None, help="The word to write (with --image).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Output image (with --image).")
@click.option("--dataset", default=None, help="Batch mode: edit every sample of this dataset to its text_t.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None, help="Batch mode output folder.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Batch mode: at most this many samples.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N | auto")
@click.option("--allow-partial", is_flag=True, help="Read an incomplete or inconsistent dataset's usable shards (warns).")
def command(checkpoint, image, text, out, dataset, out_dir, limit, device, allow_partial) -> None:
    """Edit one crop (--image --text --out) or a dataset (--dataset --out-dir)."""
    import torch
    from PIL import Image

    from ..srnet.dist import device_for
    from ..srnet.infer import edit_pair, load_generator

    if bool(image) == bool(dataset):
        raise click.UsageError("give either --image (with --text, --out) or --dataset (with --out-dir)")
    if image and (not text or not out):
        raise click.UsageError("--image needs --text and --out")
    if dataset and not out_dir:
        raise click.UsageError("--dataset needs --out-dir")
    cuda = torch.cuda.is_available()
    dev = device_for(device, 0, cuda, torch.cuda.device_count() if cuda else 0, what="--device")
    if image:
        _check_out(out)
        crop = _read_crop(image)
    gen = load_generator(checkpoint, dev)
    if image:
        from ..config import FontConfig
        from ..synth.fonts import FontPool
        from ..synth.render import render_plain

        # i_t as the generator saw it in training: the word in the standard font on grey, at the crop's size
        fonts = FontPool.from_config(FontConfig())
        i_t = render_plain(fonts.standard_pil(fonts.standard_for(text), 64), text, *crop.shape[:2])
        res = edit_pair(gen, crop, i_t)
        with atomic.writing(out) as tmp:
            Image.fromarray(res["o_f"]).save(tmp)
        click.echo(f"wrote {out} ({crop.shape[1]}x{crop.shape[0]})")
        return
    from ..shards.dataset import Dataset

    ds = Dataset(dataset, allow_partial=allow_partial)
    dest = Path(out_dir)
    dest.mkdir(parents=True, exist_ok=True)
    n = min(len(ds), limit or len(ds))
    for i in range(n):
        s = ds[i]
        res = edit_pair(gen, s.images["i_s"], s.images["i_t"])
        with atomic.writing(dest / f"{s.meta['id']}.png") as tmp:
            Image.fromarray(np.concatenate([s.images["i_s"], res["o_f"]], axis=0)).save(tmp)
    click.echo(f"wrote {n} edits (source above, output below) to {dest}")
