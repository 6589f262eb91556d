"""Build the project's wheel and make venvs OUTSIDE the checkout that reuse this venv's dependencies.

A fresh venv gets a .pth line pointing at this interpreter's site-packages, so numpy/ray/pyarrow
import without a multi-minute install; the .pth files inside that folder (the editable install's
finder) are not processed, so the checkout's textsynth is not importable there unless installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SKIP = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                               "data", "out", "tests", "docs", "benchmarks")


_BUILT: list[Path] = []


def build_wheel(workdir: Path) -> Path:
    """`pip wheel` of a copy of the source tree (so no build/ folder lands in the checkout); built once
    per test session (the tree does not change during one), copied into `workdir` for each caller."""
    if _BUILT and _BUILT[0].is_file():
        workdir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(_BUILT[0], workdir / _BUILT[0].name))
    src, out = workdir / "src", workdir / "wheel"
    shutil.copytree(ROOT, src, ignore=_SKIP)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("textsynth_ste-*.whl")
    _BUILT[:] = [wheel]
    return wheel


def make_venv(path: Path, with_pip: bool = False) -> Path:
    """A new venv at `path` whose only extra import path is this venv's site-packages; returns its python."""
    args = [sys.executable, "-m", "venv", str(path)] + ([] if with_pip else ["--without-pip"])
    # venv copies the base interpreter; use the base one, not this venv's, as the prefix
    subprocess.run([getattr(sys, "_base_executable", sys.executable)] + args[1:], check=True, timeout=300)
    py = path / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "textsynth_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


def install_wheel(py: Path, wheel: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=300)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would point Python back at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TEXTSYNTH_ASSETS", "VIRTUAL_ENV")}
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", **extra})
    return env
