"""`textsynth verify`: checksums, counts, schema, every image decoded, invariants on sampled rows."""
from __future__ import annotations

import click
import numpy as np

from ..synth.invariants import check_sample
from ..errors import TextsynthError
from ..parallel import Progress
from ..shards.dataset import Dataset, read_manifest, verify_dataset
from ..shards.storage import redact


@click.command("verify")
@click.argument("root")
@click.option("--rows", "check_rows", type=click.IntRange(min=0), default=200, show_default=True,
              help="Rows whose invariants are checked (drawn at random; 0 = none).")
@click.option("--seed", type=int, default=0, help="Seed for choosing the rows.")
def command(root: str, check_rows: int, seed: int) -> int:
    """Verify dataset ROOT; exits 1 naming every bad shard or row."""
    try:
        total = int(read_manifest(None, root).get("rows", 0))
    except TextsynthError:
        total = 0  # verify_dataset reports the manifest problem
    with Progress("verify", total) as advance:  # drawn on stderr only when it is a terminal
        problems = verify_dataset(root, on_shard=advance)
    checked = 0
    if not problems and check_rows:
        ds = Dataset(root)
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(ds), size=min(check_rows, len(ds)), replace=False)
        for i in sorted(int(r) for r in rows):
            problems += [f"row {i}: {p}" for p in check_sample(ds[i])]
            checked += 1
    for p in problems:
        click.echo(f"FAIL {redact(p)}", err=True)
    if problems:
        click.echo(f"{redact(root)}: {len(problems)} problem(s)", err=True)
        return 1
    click.echo(f"{redact(root)}: OK (checksums, schema, every image decoded; invariants on {checked} rows)")
    return 0
