"""Ray generation into sharded Arrow datasets: real local and two-node clusters, kills, resume, verify.

Run through scripts/test.sh, which puts the whole session in a loopback-only network namespace.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from textsynth import recipes
from textsynth.errors import TextsynthError
from textsynth.fingerprint import dataset_fingerprint, identity_parts
from textsynth.generate import Plan, generate
from textsynth.generate.worker import ShardWorker
from textsynth.sample import IMAGE_KEYS
from textsynth.shards.dataset import Dataset, read_manifest, shard_name, verify_dataset
from textsynth.synth.synthesizer import Pools

from .support.cli_errors import one_error_line
from .support.procs import cmdline_pids, env_for, free_port, kill_marked, new_marker

ray = pytest.importorskip("ray")
CLI = [str(Path(sys.executable).parent / "textsynth")]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_cfg():
    return recipes.load(pipeline="smoke", seed=5)


_REFS: dict = {}


def reference_shas(cfg, count: int, shard_size: int, tmp: Path) -> dict[str, str]:
    """The same shards rendered in-process, one after another: what any cluster must reproduce."""
    key = (cfg.seed, count, shard_size)
    if key not in _REFS:
        plan = Plan(out=str(tmp), count=count, cfg=cfg, shard_size=shard_size)
        fingerprint = dataset_fingerprint(identity_parts(cfg, count, shard_size, "lz4"))
        worker = ShardWorker(plan, Pools.from_config(cfg), str(tmp), fingerprint)
        out = {}
        for k in range(plan.num_shards):
            e = worker.render_shard(k)["entry"]
            out[e["file"]] = e["sha256"]
        _REFS[key] = out
    return _REFS[key]


def shas(root: Path) -> dict[str, str]:
    return {e["file"]: e["sha256"] for e in read_manifest(None, str(root))["shards"]}


def test_local_cluster_dataset_opens_in_hf_pyarrow_and_reader(ray_cluster, smoke_cfg, tmp_path):
    out = tmp_path / "ds"
    manifest, report = generate(Plan(out=str(out), count=240, cfg=smoke_cfg, shard_size=60), progress=False)
    assert manifest["rows"] == 240 and manifest["complete"] is True
    assert sorted(report.written) == [0, 1, 2, 3]
    # byte-identical to the same shards rendered in one process: worker count does not matter
    assert shas(out) == reference_shas(smoke_cfg, 240, 60, tmp_path / "ref")
    assert verify_dataset(str(out)) == []

    import datasets

    hf = datasets.load_from_disk(str(out))
    ours = Dataset(str(out))
    tables = []
    for e in manifest["shards"]:
        with pa.memory_map(str(out / e["file"])) as src:
            tables.append(pa.ipc.open_stream(src).read_all())
    table = pa.concat_tables(tables)
    assert len(hf) == len(ours) == table.num_rows == 240
    for i in (0, 59, 60, 131, 239):
        row = hf[i]
        s = ours[i]
        assert row["id"] == s.meta["id"] == table.column("id")[i].as_py() == f"5-{i}"
        assert row["text_t"] == s.meta["text_t"]
        for key in IMAGE_KEYS:
            assert row[key] == table.column(key)[i].as_py()
            assert np.array_equal(ours.decode_image(i, key), s.images[key])


def test_rerun_resumes_and_other_config_is_refused(ray_cluster, smoke_cfg, tmp_path):
    out = tmp_path / "ds"
    plan = Plan(out=str(out), count=90, cfg=smoke_cfg, shard_size=30)
    generate(plan, progress=False)
    before = shas(out)
    _, again = generate(plan, progress=False)
    assert again.written == [] and again.skipped == [0, 1, 2]
    other = Plan(out=str(out), count=90, cfg=smoke_cfg.replace(seed=6), shard_size=30)
    with pytest.raises(TextsynthError, match="different seed"):
        generate(other, progress=False)
    assert shas(out) == before  # refused without touching anything
    manifest, rep = generate(other, progress=False, overwrite=True)
    assert sorted(rep.written) == [0, 1, 2] and manifest["seed"] == 6


def test_lost_shard_is_rewritten_and_partial_temp_files_ignored(ray_cluster, smoke_cfg, tmp_path):
    out = tmp_path / "ds"
    plan = Plan(out=str(out), count=90, cfg=smoke_cfg, shard_size=30)
    generate(plan, progress=False)
    before = shas(out)
    (out / shard_name(1, 3)).unlink()
    (out / ".data-00002-of-00003.arrow.tmp-dead").write_bytes(b"half a shard")
    _, rep = generate(plan, progress=False)
    assert rep.written == [1] and shas(out) == before


def test_killed_worker_still_ends_in_complete_correct_dataset(ray_cluster, smoke_cfg, tmp_path):
    out = tmp_path / "ds"
    plan = Plan(out=str(out), count=480, cfg=smoke_cfg, shard_size=60)
    result: dict = {}

    def run():
        try:
            result["manifest"], result["report"] = generate(plan, progress=False)
        except BaseException as e:  # surfaced by the assertion below
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    killed = None
    deadline = time.time() + 60
    while killed is None and time.time() < deadline and t.is_alive():
        busy = cmdline_pids(b"ray::ShardWorker.render_shard")
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            killed = busy[0]
        time.sleep(0.05)
    t.join(timeout=300)
    assert killed is not None, "never saw a busy worker to kill"
    assert "error" not in result, result.get("error")
    assert result["manifest"]["rows"] == 480
    assert shas(out) == reference_shas(smoke_cfg, 480, 60, tmp_path / "ref")
    assert verify_dataset(str(out)) == []


def test_killed_driver_then_rerun_equals_uninterrupted_run(smoke_cfg, tmp_path):
    out = tmp_path / "ds"
    marker = new_marker()
    tmp = tempfile.mkdtemp(prefix="tsr-")
    cmd = CLI + ["generate", "--out", str(out), "--count", "360", "--shard-size", "24", "--pipeline", "smoke",
                 "--seed", "5", "--num-cpus", "2", "--quiet"]
    try:
        proc = subprocess.Popen(cmd, env=env_for(marker, tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        landed = 0
        while time.time() < deadline and proc.poll() is None:
            try:
                landed = len(read_manifest(None, str(out))["shards"])
            except Exception:  # noqa: BLE001 - manifest not written yet
                landed = 0
            if landed >= 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"driver finished before it could be killed: {proc.stdout.read().decode()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kill_marked(marker)  # the orphaned local cluster
        partial = read_manifest(None, str(out))
        assert partial["complete"] is False and 3 <= len(partial["shards"]) < 15
        rerun = subprocess.run(cmd + ["--report", str(tmp_path / "r.json")], env=env_for(marker, tmp),
                               capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        report = json.loads((tmp_path / "r.json").read_text())
        assert len(report["skipped"]) >= 3 and sorted(report["written"] + report["skipped"]) == list(range(15))
    finally:
        kill_marked(marker)
        shutil.rmtree(tmp, ignore_errors=True)
    assert shas(out) == reference_shas(smoke_cfg, 360, 24, tmp_path / "ref")
    assert read_manifest(None, str(out))["complete"] is True
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_two_node_cluster_via_address_and_a_node_blind_to_out_is_refused(smoke_cfg, tmp_path):
    """Two real nodes joined with --address: a relative --out lands where the driver runs, every shard is
    written once, spread over both nodes, byte-identical to one process. Where user+mount namespaces
    exist, the second node runs in one where `hidden/` is an empty tmpfs (a folder only the driver's node
    has): --out under hidden/ is refused naming the node, before anything is written."""
    blind_node = subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    marker, tmp = new_marker(), tempfile.mkdtemp(prefix="tsr-")
    env = env_for(marker, tmp)
    port = free_port()
    hidden, work, raycwd = tmp_path / "hidden", tmp_path / "work", tmp_path / "raycwd"
    for d in (hidden, work, raycwd):
        d.mkdir()
    ray_bin = str(Path(sys.executable).parent / "ray")
    try:
        subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                        f"--temp-dir={tmp}", "--include-dashboard=false", "--disable-usage-stats"],
                       env=env, cwd=raycwd, check=True, capture_output=True, timeout=120)
        worker = (f"exec {ray_bin} start --address=127.0.0.1:{port} --node-ip-address=127.0.0.1 --num-cpus=1 "
                  f"--dashboard-agent-listen-port={free_port()} --disable-usage-stats")
        node = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs tmpfs {hidden} && {worker}"] if blind_node \
            else ["sh", "-c", worker]
        subprocess.run(node, env=env, cwd=raycwd, check=True, capture_output=True, timeout=120)
        common = ["--address", f"127.0.0.1:{port}", "--count", "240", "--shard-size", "30", "--pipeline", "smoke",
                  "--seed", "5", "--quiet"]
        r = subprocess.run(CLI + ["generate", "--out", "rel/ds", "--report", "r.json", *common], env=env, cwd=work,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        if blind_node:
            blind = subprocess.run(CLI + ["generate", "--out", str(hidden / "ds"), *common], env=env, cwd=work,
                                   capture_output=True, text=True, timeout=300)
    finally:
        kill_marked(marker)
        shutil.rmtree(tmp, ignore_errors=True)
    report = json.loads((work / "r.json").read_text())
    assert report["written"] == list(range(8))  # every shard written exactly once
    assert len(report["nodes"]) == 2 and sum(report["nodes"].values()) == 8
    assert not (raycwd / "rel").exists()
    out = work / "rel" / "ds"
    assert verify_dataset(str(out)) == []
    assert shas(out) == reference_shas(smoke_cfg, 240, 30, tmp_path / "ref")
    if blind_node:
        line = one_error_line(blind)
        assert "127.0.0.1" in line and "cannot see" in line, line
        assert sorted(p.name for p in (hidden / "ds").iterdir()) == []


def test_verify_names_corrupt_and_truncated_shards(ray_cluster, smoke_cfg, tmp_path):
    out = tmp_path / "ds"
    generate(Plan(out=str(out), count=90, cfg=smoke_cfg, shard_size=30), progress=False)
    ok = subprocess.run(CLI + ["verify", str(out), "--rows", "30"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    corrupt, truncated = out / shard_name(0, 3), out / shard_name(2, 3)
    data = bytearray(corrupt.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    corrupt.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    bad = subprocess.run(CLI + ["verify", str(out)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert corrupt.name in bad.stderr and truncated.name in bad.stderr
    assert shard_name(1, 3) not in bad.stderr


def test_export_import_preview_roundtrip(ray_cluster, smoke_cfg, tmp_path):
    out = tmp_path / "ds"
    generate(Plan(out=str(out), count=20, cfg=smoke_cfg, shard_size=20), progress=False)
    exp = tmp_path / "srnet"
    r = subprocess.run(CLI + ["export", str(out), "--format", "srnet", str(exp)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for key in ("i_s", "i_t", "t_sk", "t_t", "t_b", "t_f", "mask_t"):
        assert len(list((exp / key).glob("*.png"))) == 20
    back = tmp_path / "back"
    r = subprocess.run(CLI + ["import", str(exp), str(back)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a, b = Dataset(str(out)), Dataset(str(back))
    for i in range(20):
        for key in IMAGE_KEYS:
            assert np.array_equal(a.decode_image(i, key), b.decode_image(i, key))
        assert a[i].meta["text_t"] == b[i].meta["text_t"]
    sheet = tmp_path / "p.png"
    r = subprocess.run(CLI + ["preview", "--from", str(out), "--count", "4", "--out", str(sheet)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and sheet.stat().st_size > 10_000, r.stderr


def test_import_reference_generator_fixture(tmp_path):
    src = ROOT / "tests" / "fixtures" / "srnet-datagen-sample"
    r = subprocess.run(CLI + ["import", str(src), str(tmp_path / "imp")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ds = Dataset(str(tmp_path / "imp"))
    assert len(ds) == 8 and verify_dataset(str(tmp_path / "imp")) == []


def test_full_disk_is_a_clear_error_and_leaves_no_partial_shard(tmp_path):
    """Generate onto a 1.5 MB tmpfs (its own mount namespace): the error names the shard and the
    cause, no temp file stays behind, and whatever landed still reads back whole."""
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no user+mount namespaces here to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    marker = new_marker()
    tmp = tempfile.mkdtemp(prefix="tsr-")
    script = (f"mount -t tmpfs -o size=1500k tmpfs {mnt} && "
              f"{CLI[0]} generate --out {mnt}/ds --count 60 --shard-size 10 --pipeline smoke --num-cpus 1 --quiet; "
              f"echo rc=$?; ls -a {mnt}/ds; {CLI[0]} verify {mnt}/ds --rows 0; echo verify=$?")
    try:
        r = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env_for(marker, tmp), capture_output=True,
                           text=True, timeout=300)
    finally:
        kill_marked(marker)
        shutil.rmtree(tmp, ignore_errors=True)
    out = r.stdout + r.stderr
    assert "rc=2" in out, out
    assert "No space left on device" in out and "cannot write shard" in out and ".arrow" in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]  # one line, no Ray traceback
    assert len(errors) == 1 and ".arrow" in errors[0] and "Traceback" not in out and "RayTaskError" not in out, out
    assert ".tmp-" not in r.stdout  # ls -a of the dataset folder: no half-written shard
    problems = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(problems) == 1 and "incomplete dataset" in problems[0], out  # what landed is whole
