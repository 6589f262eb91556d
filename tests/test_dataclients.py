"""Ray Data reader and Parquet export read back equal to the shards; the README's client snippets run.

Run through scripts/test.sh (Ray starts inside the loopback-only network namespace).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from textsynth import recipes
from textsynth.interop.parquet_export import export_parquet
from textsynth.sample import IMAGE_KEYS
from textsynth.shards.dataset import Dataset, shard_name, write_dataset_metadata
from textsynth.shards.writer import write_shard
from textsynth.synth.synthesizer import Synthesizer

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).parent / "textsynth")]
N, SHARDS = 24, 3


@pytest.fixture(scope="module")
def samples():
    syn = Synthesizer(recipes.load(pipeline="smoke", seed=31))
    return [syn.sample(i) for i in range(N)]


def write(root: Path, samples, encoding: str) -> Path:
    parts = np.array_split(np.arange(len(samples)), SHARDS)
    infos = [write_shard(root / shard_name(k, SHARDS), [samples[i] for i in idx], encoding)
             for k, idx in enumerate(parts)]
    write_dataset_metadata(None, str(root), encoding, infos, seed=31)
    return root


def png_decode(data: bytes, key: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def test_ray_data_reader_equals_the_shards(ray_cluster, samples, tmp_path):
    from textsynth.interop.raydata import datasource_class, read_textsynth

    root = write(tmp_path / "ds", samples, "lz4")
    tasks = datasource_class()(str(root)).get_read_tasks(parallelism=8)  # parallel by shard
    assert [t.metadata.input_files for t in tasks] == [(str(root / shard_name(k, SHARDS)),) for k in range(SHARDS)]
    assert [t.metadata.num_rows for t in tasks] == [len(Dataset(root).shard(k)) for k in range(SHARDS)]
    rds = read_textsynth(str(root))
    assert rds.count() == N
    rows = {r["id"]: r for r in rds.take_all()}
    ours = Dataset(root)
    assert sorted(rows) == sorted(ours.row_meta(i).id for i in range(N))
    for i in range(N):
        s, r = ours[i], rows[ours.row_meta(i).id]
        assert (r["text_s"], r["text_t"], r["height"], r["width"]) == tuple(ours.row_meta(i))[1:]
        for key in IMAGE_KEYS:
            assert r[key].dtype == np.uint8 and np.array_equal(r[key], s.images[key]), key
    encoded = read_textsynth(str(root), keys=("mask_t",), decode=False).take(2)
    assert set(encoded[0]) == {"id", "text_s", "text_t", "height", "width", "meta", "mask_t"}
    assert bytes(encoded[0]["mask_t"]) == bytes(ours.image_bytes(0, "mask_t"))
    with pytest.raises(ValueError, match="unknown image key"):
        read_textsynth(str(root), keys=("nope",))


@pytest.mark.parametrize("encoding", ["lz4", "png"])
def test_parquet_export_reads_back_equal_and_resumes(samples, tmp_path, encoding):
    import duckdb
    import polars as pl

    root = write(tmp_path / "ds", samples, encoding)
    out = tmp_path / "pq"
    r = subprocess.run(CLI + ["export", str(root), "--format", "parquet", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == [shard_name(k, SHARDS).replace(".arrow", ".parquet") for k in range(SHARDS)]
    ours = Dataset(root)
    table = pads.dataset(str(out), format="parquet").to_table()
    assert table.num_rows == N and table.column("id").to_pylist() == [ours.row_meta(i).id for i in range(N)]
    for i in range(N):
        for key in IMAGE_KEYS:
            data = table.column(key)[i]["bytes"].as_py()
            assert np.array_equal(png_decode(data, key), ours.decode_image(i, key)), (i, key)
    frame = pl.scan_parquet(str(out / "*.parquet")).select("id", "width").collect()
    assert frame["width"].to_list() == ours.widths.tolist()
    got = duckdb.sql(f"SELECT id, i_s.bytes FROM '{out}/*.parquet' WHERE id = '{ours.row_meta(5).id}'").fetchall()
    assert len(got) == 1 and np.array_equal(png_decode(got[0][1], "i_s"), ours.decode_image(5, "i_s"))
    # a rerun leaves complete files alone and rewrites a truncated one
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    victim = out / files[1]
    victim.write_bytes(victim.read_bytes()[:100])
    assert export_parquet(str(root), str(out)) == N
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != files[1]} == \
        {k: v for k, v in mtimes.items() if k != files[1]}
    assert pq.read_table(victim).num_rows == len(Dataset(root).shard(1))


def readme_blocks(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run_snippet(heading: str, data: Path, parquet: Path | None = None) -> dict:
    ns: dict = {}
    for block in readme_blocks(heading):
        code = block.replace("data/demo-parquet", str(parquet)) if parquet else block
        exec(compile(code.replace("data/demo", str(data)), f"README:{heading}", "exec"), ns)
    return ns


def test_readme_client_snippets_run(ray_cluster, samples, tmp_path):
    import datasets

    root = write(tmp_path / "demo", samples, "lz4")
    ours = Dataset(root)
    try:
        hf = run_snippet("Hugging Face `datasets`", root)
    finally:
        datasets.enable_caching()
    assert np.array_equal(hf["row"]["i_s"], ours.decode_image(0, "i_s"))
    assert tuple(hf["tensors"]["t_f"].shape) == (3, ours.heights[0], ours.widths[0])

    rd = run_snippet("Ray Data", root)
    assert rd["total_width"] == int(ours.widths.sum()) and rd["first"]["i_s"].ndim == 3

    out = tmp_path / "demo-parquet"
    assert export_parquet(str(root), str(out)) == N
    pq_ns = run_snippet("pyarrow, polars, DuckDB: Parquet export", root, out)
    assert pq_ns["table"].num_rows == N and isinstance(pq_ns["table"], pa.Table)
    assert len(pq_ns["wide"]) == int((ours.widths > 128).sum())
    first = min(range(N), key=lambda i: ours.row_meta(i).id)
    assert np.array_equal(png_decode(pq_ns["png"], "i_s"), ours.decode_image(first, "i_s"))
