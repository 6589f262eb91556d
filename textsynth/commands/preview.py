"""`textsynth preview`: a labelled contact sheet of freshly rendered samples, or of a dataset's."""
from __future__ import annotations

import click
import numpy as np

from .. import atomic
from ..synth.preview import contact_sheet
from .options import add, overrides, recipe, resolve_recipe


@click.command("preview")
@click.option("--count", type=click.IntRange(1, 200), default=8, show_default=True)
@add(recipe)
@add(overrides)
@click.option("--from", "from_dir", default=None, help="Draw random samples of an existing dataset instead.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Output PNG.")
@click.option("--allow-partial", is_flag=True, help="Read an incomplete or inconsistent dataset's usable shards (warns).")
def command(count, config, pipeline, seed, fonts, backgrounds, corpus, lang, height, sets, from_dir, out,
            allow_partial) -> None:
    """Render COUNT samples (or pick COUNT random rows of --from DIR) into one PNG contact sheet."""
    if from_dir:
        from ..shards.dataset import Dataset

        ds = Dataset(from_dir, allow_partial=allow_partial)
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(ds), size=min(count, len(ds)), replace=False)
        samples = [ds[int(i)] for i in sorted(idx)]
        sheet = contact_sheet(samples)
    else:
        from ..synth.synthesizer import Synthesizer

        cfg = resolve_recipe(config, pipeline, seed, fonts, backgrounds, corpus, lang, height, sets)
        syn = Synthesizer(cfg)
        samples = [syn.sample(i) for i in range(count)]
        sheet = contact_sheet(samples, syn.pools.fonts)
    with atomic.writing(out) as tmp:
        sheet.save(tmp)
    click.echo(f"wrote {out} ({len(samples)} samples)")
