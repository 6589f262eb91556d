"""The built wheel, installed into a fresh venv outside the checkout, carries its assets and runs.

Run through scripts/test.sh (the generate step starts a private Ray cluster inside the loopback netns).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from textsynth.shards.dataset import Dataset, verify_dataset

from .support.procs import kill_marked, new_marker
from .support.wheelenv import ROOT, build_wheel, clean_env, install_wheel, make_venv


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pkg")
    py = make_venv(work / "venv")
    install_wheel(py, build_wheel(work))
    return py


def run(args, cwd, env=None, timeout=300):
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                       timeout=timeout)
    return r


def test_wheel_imports_from_the_venv_with_packaged_assets(installed, tmp_path):
    venv = installed.parents[1]
    r = run([installed, "-c", "import json, textsynth, textsynth.assets as a, textsynth.recipes as r; "
             "print(json.dumps([textsynth.__file__, str(a.asset_root()), r.available()]))"], tmp_path)
    assert r.returncode == 0, r.stderr
    module, assets, recipes = json.loads(r.stdout)
    assert Path(module).is_relative_to(venv) and not Path(module).is_relative_to(ROOT)
    assert Path(assets) == Path(module).parent / "_assets"
    assert {"en", "zh", "smoke"} <= set(recipes)
    assert run([installed, "-c", "import cli"], tmp_path).returncode != 0  # no top-level `cli` module installed
    version = run([venv / "bin" / "textsynth", "--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == "textsynth, version 0.1.0"
    # TEXTSYNTH_ASSETS overrides the packaged copy, and a wrong one is a one-line error naming it
    bad = run([installed, "-m", "textsynth", "fonts"], tmp_path, clean_env(TEXTSYNTH_ASSETS=str(tmp_path / "none")))
    assert bad.returncode == 2 and bad.stderr.startswith("error: bundled assets not found")
    assert str(tmp_path / "none") in bad.stderr and "Traceback" not in bad.stderr
    good = run([installed, "-m", "textsynth", "fonts"], tmp_path, clean_env(TEXTSYNTH_ASSETS=str(ROOT)))
    assert good.returncode == 0 and "TSK Kai Subset" in good.stdout


def test_wheel_previews_and_generates_outside_the_checkout(installed, tmp_path):
    venv = installed.parents[1]
    r = run([installed, "-m", "textsynth", "preview", "--count", "3", "--pipeline", "smoke", "--seed", "1",
             "--out", "sheet.png"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "sheet.png").stat().st_size > 1000
    marker, ray_tmp = new_marker(), tempfile.mkdtemp(prefix="tsr-")
    try:
        r = run([venv / "bin" / "textsynth", "generate", "--out", "ds", "--count", "24", "--shard-size", "12",
                 "--pipeline", "smoke", "--seed", "2", "--num-cpus", "1", "--quiet"], tmp_path,
                clean_env(TEXTSYNTH_TEST_MARK=marker, RAY_TMPDIR=ray_tmp))
    finally:
        kill_marked(marker)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert verify_dataset(str(tmp_path / "ds")) == []
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 24 and ds[23].meta["text_s"]
