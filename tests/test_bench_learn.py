"""benchmarks/bench_learn.py runs end to end on a tiny budget, and --summarise turns its outputs into one
markdown comparison whose commands spell out every trainer setting."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
BENCH = str(ROOT / "benchmarks" / "bench_learn.py")
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, BENCH, *args], capture_output=True, text=True, timeout=600, env=ENV)


def test_bench_learn_tiny_runs_and_summarises(tmp_path):
    outs = []
    for name, flags in (("bce", ["--gan", "bce", "--g-every", "1", "--lr", "1e-4"]),
                        ("noadv", ["--gan", "lsgan", "--lr", "1e-4", "--adv-weight", "0", "--g-every", "2"])):
        r = bench("--budget-cpu-min", "0.02", "--eval-every", "2", "--train-samples", "16", "--val-samples", "8",
                  "--width", "0.125", "--batch-size", "2", "--work", str(tmp_path / "work"), *flags)
        assert r.returncode == 0, r.stderr[-3000:]
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert [x["event"] for x in lines][:2] == ["start", "eval"] and lines[-1]["event"] == "summary"
        evals = [x for x in lines if x["event"] == "eval"]
        assert evals[0]["step"] == 0 and evals[-1]["step"] == lines[-1]["steps"] > 0
        assert all(e["identity"]["psnr"] == evals[0]["identity"]["psnr"] for e in evals)  # one held-out set
        out = tmp_path / f"{name}.jsonl"
        out.write_text(r.stdout)
        outs.append(out)
    assert len(list((tmp_path / "work").glob("run-*"))) == 2   # each setting trained in its own run folder

    png = tmp_path / "curves.png"
    r = bench("--summarise", *map(str, outs), "--plot", str(png))
    assert r.returncode == 0, r.stderr[-3000:]
    from PIL import Image

    with Image.open(png) as im:  # a real PNG of the two panels
        assert im.format == "PNG" and im.size[0] > im.size[1] > 200
    table = r.stdout
    assert "`--gan bce --g-every 1 --lr 0.0001 --adv-weight 1 --width 0.125 --batch-size 2" in table
    assert "`--gan lsgan --g-every 2 --lr 0.0001 --adv-weight 0 --width 0.125 --batch-size 2" in table
    assert table.count("| yes |") == 2


def test_bench_learn_summarise_refuses_other_files_in_one_line(tmp_path):
    bad = tmp_path / "log.txt"
    bad.write_text("not json\n")
    r = bench("--summarise", str(bad))
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith(f"error: {bad}: not a bench_learn output")
    r = bench("--plot", str(tmp_path / "c.png"))
    assert r.returncode != 0 and r.stderr.strip() == "error: --plot needs --summarise FILE..."
    assert not (tmp_path / "c.png").exists()
