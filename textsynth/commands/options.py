"""Click options shared by several commands."""
from __future__ import annotations

import click

recipe = [
    click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                 help="Recipe file (.toml or .json)."),
    click.option("--pipeline", default=None, help="Named recipe from pipelines/ (en, zh, mixed, smoke, ...)."),
    click.option("--seed", type=int, default=None, help="Dataset seed (overrides the recipe's)."),
]


def add(options):
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


# generate/preview: recipe overrides on the command line (textsynth/overrides.py types them)
overrides = [
    click.option("--fonts", "fonts", multiple=True, type=click.Path(exists=True, file_okay=False),
                 help="Font folder replacing the bundled pool (repeatable)."),
    click.option("--backgrounds", "backgrounds", multiple=True, type=click.Path(exists=True, file_okay=False),
                 help="Background image folder replacing the bundled photos (repeatable)."),
    click.option("--corpus", "corpus", multiple=True, type=click.Path(exists=True, dir_okay=False),
                 help="UTF-8 text file, one word or phrase a line, replacing the bundled corpora (repeatable)."),
    click.option("--lang", type=click.Choice(["en", "zh", "mixed"]), default=None, help="Corpus language."),
    click.option("--height", type=int, default=None, help="Output height in px (0 keeps the native size)."),
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                 help="Any config key, e.g. --set style.curve_p=0.2 --set render.max_width=512 (repeatable)."),
]


def resolve_recipe(config, pipeline, seed, fonts=(), backgrounds=(), corpus=(), lang=None, height=None, sets=()):
    """The recipe a command runs: --config/--pipeline/defaults, then --seed, then the override flags."""
    from .. import overrides as ov
    from .. import recipes

    cfg = recipes.load(config, pipeline, seed)
    return ov.apply(cfg, ov.collect(sets, fonts, backgrounds, corpus, lang, height))
