"""`textsynth generate`: render N samples with Ray into a sharded Arrow dataset (resumable)."""
from __future__ import annotations

import json
import os

import click
from pyarrow.fs import LocalFileSystem

from ..errors import TextsynthError
from ..generate import DEFAULT_SHARD_SIZE, Plan, generate
from ..shards.encodings import ENCODINGS
from ..shards.storage import atomic_write_bytes, redact
from .options import add, overrides, recipe, resolve_recipe


@click.command("generate")
@click.option("--out", required=True, help="Dataset folder: a local path or s3://bucket/prefix?endpoint_override=...")
@click.option("--count", type=click.IntRange(min=1), required=True, help="Number of samples.")
@add(recipe)
@add(overrides)
@click.option("--shard-size", type=click.IntRange(min=1), default=DEFAULT_SHARD_SIZE, show_default=True)
@click.option("--address", default=None, envvar="RAY_ADDRESS",
              help="Join this Ray cluster (host:port or ray://...); default: start a private local one.")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs of the local cluster.")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="lz4", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace a dataset made with another config/seed/count.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Write this run's report (shards written/skipped, nodes, timings) as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(out, count, config, pipeline, seed, fonts, backgrounds, corpus, lang, height, sets, shard_size,
            address, num_cpus, encoding, overwrite, report_path, quiet) -> None:
    """Generate COUNT samples into OUT; rerunning the same command resumes an interrupted run."""
    if report_path:
        check_report_path(report_path)
    cfg = resolve_recipe(config, pipeline, seed, fonts, backgrounds, corpus, lang, height, sets)
    plan = Plan(out=out, count=count, cfg=cfg, shard_size=shard_size, encoding=encoding)
    manifest, report = generate(plan, address=address, num_cpus=num_cpus, overwrite=overwrite,
                                progress=not quiet)
    r = report.to_dict()
    if report_path:
        atomic_write_bytes(LocalFileSystem(), os.path.abspath(report_path), json.dumps(r, indent=2).encode())
    click.echo(f"{redact(out)}: {manifest['rows']} samples in {len(manifest['shards'])} shards "
               f"({len(r['written'])} written now, {len(r['skipped'])} already done) in {r['wall_s']:.1f}s"
               + (f", {r['samples_per_s']} samples/s" if r["samples"] else ""))


def check_report_path(path: str) -> None:
    """--report must be writable before any data is: its folder exists and accepts files."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise TextsynthError(f"--report {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise TextsynthError(f"--report {path} is a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TextsynthError(f"--report {path}: folder {folder} is not writable")
