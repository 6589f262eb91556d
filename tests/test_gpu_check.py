"""benchmarks/gpu_check.py imports and runs end to end in its CPU dry-run mode (it measures on a GPU)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_prints_one_json(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out",
                        str(tmp_path / "out"), "--data", str(tmp_path / "none")], capture_output=True, text=True,
                       timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)  # stdout is exactly one JSON document
    assert [(s["batch"], s["width"], s["compile"]) for s in res["steps"]] == [(2, 32, False), (2, 64, False)]
    assert all(s["samples_per_s"] > 0 and s["losses_finite"] for s in res["steps"])
    assert res["train"]["steps"] >= 1 and res["train"]["samples_per_s"] > 0
    assert res["loader"]["samples_per_s"] > 0 and res["loader_headroom"] > 0
