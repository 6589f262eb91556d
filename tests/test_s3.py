"""Output to S3 round-trips: generate into a SeaweedFS bucket on loopback, read back, verify, resume, refuse.

The server (tests/support/s3server.py) binds 127.0.0.1 only; run the file inside a loopback-only network
namespace like the rest of the Ray tests (scripts/test.sh). Credentials reach the Ray workers through
AWS_* variables set before Ray starts; the S3 URI carries only endpoint, scheme and region.
"""
from __future__ import annotations

import shutil
import tempfile

import numpy as np
import pyarrow.fs as pafs
import pytest

from textsynth import recipes
from textsynth.errors import TextsynthError
from textsynth.generate import Plan, generate
from textsynth.sample import IMAGE_KEYS
from textsynth.shards.dataset import Dataset, read_manifest, verify_dataset


ray = pytest.importorskip("ray")

COUNT, SHARD_SIZE = 120, 40
SHARDS = [f"data-{k:05d}-of-00003.arrow" for k in range(3)]
METADATA = ["dataset_info.json", "state.json", "textsynth.json"]


@pytest.fixture(scope="module")
def ray_cluster(s3):
    """A local Ray cluster started with the S3 credentials in its environment, so workers inherit them."""
    assert not ray.is_initialized(), "Ray already running: its workers would lack the S3 credentials"
    tmp = tempfile.mkdtemp(prefix="tsr-")  # short: Ray's socket paths must stay under 107 bytes
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3.env().items():
            mp.setenv(key, value)
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=tmp, logging_level="ERROR")
        try:
            yield
        finally:
            ray.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def smoke_cfg():
    return recipes.load(pipeline="smoke", seed=3)


@pytest.fixture(scope="module")
def s3_plan(s3, smoke_cfg):
    return Plan(out=s3.uri("bucket/ds"), count=COUNT, cfg=smoke_cfg, shard_size=SHARD_SIZE)


@pytest.fixture(scope="module")
def generated(ray_cluster, s3_plan):
    """The S3 dataset, generated once for the module: (manifest, report)."""
    return generate(s3_plan, num_cpus=2, progress=False)


@pytest.fixture(scope="module")
def local_ref(ray_cluster, smoke_cfg, tmp_path_factory):
    """The same plan generated into a local folder: what the bucket must hold byte for byte."""
    out = tmp_path_factory.mktemp("local") / "ds"
    manifest, _ = generate(Plan(out=str(out), count=COUNT, cfg=smoke_cfg, shard_size=SHARD_SIZE), progress=False)
    return out, manifest


def objects(s3, prefix: str) -> dict[str, int]:
    """Every object (file) under `prefix`, relative name -> size."""
    infos = s3.filesystem().get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    return {i.path[len(prefix) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}


def test_generate_to_s3_is_byte_identical_to_local(s3, generated, local_ref):
    manifest, report = generated
    local_dir, local_manifest = local_ref
    assert manifest["rows"] == COUNT and manifest["complete"] is True and manifest["seed"] == 3
    assert sorted(report.written) == [0, 1, 2] and report.skipped == [] and report.samples == COUNT
    # exactly the shards and metadata under the prefix: nothing written into the URI's query or beside it
    assert sorted(objects(s3, "bucket/ds")) == sorted(SHARDS + METADATA)
    assert objects(s3, "bucket").keys() == {f"ds/{n}" for n in SHARDS + METADATA}
    assert manifest["shards"] == local_manifest["shards"]
    fs = s3.filesystem()
    for name in SHARDS:
        with fs.open_input_stream(f"bucket/ds/{name}") as f:
            assert f.read() == (local_dir / name).read_bytes(), name
    assert read_manifest(None, s3.uri("bucket/ds")) == manifest


def test_dataset_reads_every_image_back_from_s3(s3, generated, local_ref, smoke_cfg):
    from textsynth.synth.synthesizer import Synthesizer

    ds = Dataset(s3.uri("bucket/ds"))
    ref = Dataset(str(local_ref[0]))
    assert len(ds) == len(ref) == COUNT and ds.encoding == ref.encoding
    for i in range(COUNT):
        assert ds.row_meta(i) == ref.row_meta(i)
        for key in IMAGE_KEYS:
            assert np.array_equal(ds.image_bytes(i, key), ref.image_bytes(i, key)), (i, key)
            assert np.array_equal(ds.decode_image(i, key), ref.decode_image(i, key)), (i, key)
    syn = Synthesizer(smoke_cfg)
    for i in (0, SHARD_SIZE - 1, SHARD_SIZE, COUNT - 1):  # shard edges, against a fresh in-process render
        s, got = syn.sample(i), ds[i]
        assert got.meta == s.meta
        for key in IMAGE_KEYS:
            assert np.array_equal(got.images[key], s.images[key]), (i, key)
    ds.close()
    assert verify_dataset(s3.uri("bucket/ds")) == []


def test_rerun_on_s3_skips_every_shard(s3, generated, s3_plan):
    manifest, _ = generated
    before = objects(s3, "bucket/ds")
    again_manifest, again = generate(s3_plan, num_cpus=2, progress=False)
    assert again.written == [] and again.skipped == [0, 1, 2]
    assert again_manifest["shards"] == manifest["shards"]
    assert objects(s3, "bucket/ds") == before


def test_other_seed_on_s3_refused_unless_overwrite(s3, generated, s3_plan, smoke_cfg):
    manifest, _ = generated
    fs = s3.filesystem()
    with fs.open_input_stream("bucket/ds/textsynth.json") as f:
        manifest_bytes = f.read()
    other = Plan(out=s3_plan.out, count=COUNT, cfg=smoke_cfg.replace(seed=4), shard_size=SHARD_SIZE)
    with pytest.raises(TextsynthError, match="different seed"):
        generate(other, num_cpus=2, progress=False)
    with fs.open_input_stream("bucket/ds/textsynth.json") as f:
        assert f.read() == manifest_bytes  # refused without touching anything
    assert verify_dataset(s3_plan.out) == []

    # overwrite=True replaces it (on its own prefix, so the other tests' dataset stays put)
    small = dict(count=40, shard_size=20)
    uri = s3.uri("bucket/ow")
    generate(Plan(out=uri, cfg=smoke_cfg, **small), num_cpus=2, progress=False)
    with pytest.raises(TextsynthError, match="different seed"):
        generate(Plan(out=uri, cfg=smoke_cfg.replace(seed=4), **small), num_cpus=2, progress=False)
    m, rep = generate(Plan(out=uri, cfg=smoke_cfg.replace(seed=4), **small), num_cpus=2, progress=False,
                      overwrite=True)
    assert sorted(rep.written) == [0, 1] and m["seed"] == 4
    assert sorted(objects(s3, "bucket/ow")) == sorted(["data-00000-of-00002.arrow", "data-00001-of-00002.arrow",
                                                      *METADATA])
    assert verify_dataset(uri) == []
    assert Dataset(uri).row_meta(0).id == "4-0"


def test_uri_credentials_are_used_and_enforced(s3, generated, monkeypatch):
    """With no AWS_* variables, keys in the URI's userinfo read the dataset; a wrong key is refused."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    ds = Dataset(s3.uri("bucket/ds", credentials=True))
    assert len(ds) == COUNT and ds.row_meta(COUNT - 1).id == f"3-{COUNT - 1}"
    bad = s3.uri("bucket/ds", credentials=True).replace(s3.secret_key, "wrong-secret")
    with pytest.raises(OSError):
        Dataset(bad)


def test_background_pool_from_an_s3_prefix(s3, tmp_path, monkeypatch):
    """An object-store prefix is a background source: indexed (same sha256s as the local files), read
    lazily by the synthesizer, and a bad object is rejected naming it."""
    from PIL import Image

    from textsynth.synth.backgrounds import BackgroundPool
    from textsynth.config import BackgroundConfig
    from textsynth.synth.synthesizer import Synthesizer

    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    fs = s3.filesystem()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize((200, 150)).save(tmp_path / f"p{i:02d}.png")
        with fs.open_output_stream(f"bucket/bgpool/sub/p{i:02d}.png") as f:
            f.write((tmp_path / f"p{i:02d}.png").read_bytes())
    with fs.open_output_stream("bucket/bgpool/broken.jpg") as f:
        f.write(b"\xff\xd8 not a jpeg")
    with pytest.warns(UserWarning, match="broken.jpg"):
        remote = BackgroundPool.from_config(BackgroundConfig(bundled=False, extra=(s3.uri("bucket/bgpool"),)))
    local = BackgroundPool.from_config(BackgroundConfig(bundled=False, extra=(str(tmp_path),)))
    assert [h for _, h in remote.content_hashes()] == [h for _, h in local.content_hashes()]
    assert [n for n, _ in remote.content_hashes()] == [f"sub/p{i:02d}.png" for i in range(12)]
    cfg = recipes.load(pipeline="smoke", seed=2).replace(**{
        "background.bundled": False, "background.extra": [s3.uri("bucket/bgpool")], "background.texture_p": 0.0})
    with pytest.warns(UserWarning):
        syn = Synthesizer(cfg)
    names = {syn.sample(i).meta["background"]["name"] for i in range(30)}
    assert len(names) >= 8 and all(n.startswith("sub/p") for n in names)
