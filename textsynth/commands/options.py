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
