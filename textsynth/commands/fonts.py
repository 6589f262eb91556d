"""`textsynth fonts`: list the font pool (family, glyph count, scripts covered)."""
from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..config import FontConfig
from ..synth.fonts import FontPool


@click.command("fonts")
@click.option("--extra", multiple=True, type=click.Path(), help="Extra font file or folder (repeatable).")
@click.option("--no-bundled", is_flag=True, help="Leave out the bundled fonts/.")
def command(extra: tuple[str, ...], no_bundled: bool) -> None:
    """List the fonts a recipe can draw from."""
    pool = FontPool.from_config(FontConfig(bundled=not no_bundled, extra=tuple(extra)))
    table = Table(title=f"{len(pool.fonts)} fonts")
    for col in ("file", "family", "style", "glyphs", "scripts"):
        table.add_column(col, justify="right" if col == "glyphs" else "left")
    for f in pool.describe():
        table.add_row(f["file"], f["family"], f["style"], str(f["glyphs"]), ",".join(f["scripts"]))
    Console().print(table)
    std = ", ".join(f"{k}: {v.name}" for k, v in pool.standard.items())
    click.echo(f"standard fonts for i_t: {std}")
