"""Fault and bad-input drills for `generate` (and the CLI's error lines): each test reproduces one problem
from the data-safety issue on real files, real Ray clusters and the real S3 server.

Run through scripts/test.sh (loopback-only network namespace).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pytest

from textsynth import recipes
from textsynth.errors import CorpusError, FontError, TextsynthError
from textsynth.generate import Plan, generate
from textsynth.shards.dataset import read_manifest, shard_name, verify_dataset
from textsynth.shards.lock import LOCK_NAME, LockedError
from textsynth.shards.schema import SHARD_IDENTITY_KEY

from .support.cli_errors import one_error_line
from .support.procs import env_for, kill_marked, new_marker

ray = pytest.importorskip("ray")
BIN = Path(sys.executable).parent
CLI = [str(BIN / "textsynth")]


@pytest.fixture(scope="module")
def smoke():
    return recipes.load(pipeline="smoke", seed=5)


def plan(out, cfg, count=20, shard_size=10) -> Plan:
    return Plan(out=str(out), count=count, cfg=cfg, shard_size=shard_size)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- safe overwrite and refusal ---------------------------------------------------------------------

def test_overwrite_with_missing_corpus_keeps_the_old_dataset(ray_cluster, smoke, tmp_path):
    out = tmp_path / "ds"
    generate(plan(out, smoke), progress=False)
    before = snapshot(out)
    broken = smoke.replace(**{"corpus.files": [str(tmp_path / "missing-words.txt")]})
    with pytest.raises(CorpusError, match="missing-words.txt"):
        generate(plan(out, broken), progress=False, overwrite=True)
    assert snapshot(out) == before and verify_dataset(str(out)) == []


def test_overwrite_removes_only_what_the_old_manifest_lists(ray_cluster, smoke, tmp_path):
    out = tmp_path / "ds"
    generate(plan(out, smoke, count=30), progress=False)
    (out / "data-results.csv").write_text("run,score\n1,0.5\n")
    (out / "data-00000-of-00009.arrow").write_bytes(b"a user's file with a shard-like name")
    manifest, rep = generate(plan(out, smoke.replace(seed=6)), progress=False, overwrite=True)
    assert manifest["seed"] == 6 and sorted(rep.written) == [0, 1]
    assert (out / "data-results.csv").read_text() == "run,score\n1,0.5\n"
    assert (out / "data-00000-of-00009.arrow").exists()
    assert not (out / shard_name(2, 3)).exists()  # the old dataset's third shard went with it
    assert verify_dataset(str(out)) == []


def test_non_dataset_folder_is_refused_with_nothing_written(ray_cluster, smoke, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "state.json").write_text('{"my": "training state"}')
    (out / "data-results.csv").write_text("x\n")
    before = snapshot(out)
    for overwrite in (False, True):
        with pytest.raises(TextsynthError, match="not a textsynth dataset.*state.json"):
            generate(plan(out, smoke), progress=False, overwrite=overwrite)
        assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


# --- one writer at a time ---------------------------------------------------------------------------

def test_second_writer_is_refused_naming_the_holder_and_the_first_finishes(ray_cluster, smoke, tmp_path):
    out = tmp_path / "ds"
    marker, tmp = new_marker(), tempfile.mkdtemp(prefix="tsr-")
    cmd = CLI + ["generate", "--out", str(out), "--count", "60", "--shard-size", "10", "--pipeline", "smoke",
                 "--seed", "5", "--num-cpus", "1", "--quiet"]
    try:
        first = subprocess.Popen(cmd, env=env_for(marker, tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        deadline = time.time() + 60
        while not (out / LOCK_NAME).exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None, first.stdout.read()
        # the same command again while the first runs: it would have adopted its shards and deleted its temps
        with pytest.raises(LockedError) as info:
            generate(plan(out, smoke, count=60), progress=False)
        assert f"pid {first.pid}" in str(info.value) and socket.gethostname() in str(info.value)
        assert first.wait(timeout=240) == 0, first.stdout.read()
    finally:
        kill_marked(marker)
        shutil.rmtree(tmp, ignore_errors=True)
    assert read_manifest(None, str(out))["complete"] is True and verify_dataset(str(out)) == []
    assert not (out / LOCK_NAME).exists()
    # a lock file left by a dead process (no flock held) does not block the next run
    (out / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 17}))
    _, rep = generate(plan(out, smoke, count=60), progress=False)
    assert rep.written == [] and not (out / LOCK_NAME).exists()


# --- fingerprints -----------------------------------------------------------------------------------

def test_shards_carry_the_fingerprint_and_their_index(ray_cluster, smoke, tmp_path):
    out = tmp_path / "ds"
    manifest, _ = generate(plan(out, smoke), progress=False)
    fp = manifest["fingerprint"]
    assert len(fp) == 64 and {a["kind"] for a in manifest["assets"]} == {"font", "background", "corpus"}
    for k, e in enumerate(manifest["shards"]):
        with pa.memory_map(str(out / e["file"])) as src:
            ident = json.loads(pa.ipc.open_stream(src).schema.metadata[SHARD_IDENTITY_KEY])
        assert ident == {"fingerprint": fp, "index": k, "total": 2}


def test_manifestless_shards_are_adopted_only_when_their_identity_matches(ray_cluster, smoke, tmp_path):
    out = tmp_path / "ds"
    generate(plan(out, smoke), progress=False)
    for name in ("textsynth.json", "state.json", "dataset_info.json"):
        (out / name).unlink()
    shards = snapshot(out)
    with pytest.raises(TextsynthError, match="another recipe, seed or assets"):
        generate(plan(out, smoke.replace(seed=6)), progress=False)
    assert snapshot(out) == shards
    a, b = out / shard_name(0, 2), out / shard_name(1, 2)  # swapped in place
    a.write_bytes(shards[b.name])
    b.write_bytes(shards[a.name])
    with pytest.raises(TextsynthError, match="holds shard 1 of 2, not 0 of 2"):
        generate(plan(out, smoke), progress=False)
    a.write_bytes(shards[a.name])
    b.write_bytes(shards[b.name])
    _, rep = generate(plan(out, smoke), progress=False)  # the right ones are adopted
    assert rep.written == [] and rep.skipped == [0, 1] and verify_dataset(str(out)) == []


def test_corpus_edited_between_killed_run_and_rerun_is_refused(ray_cluster, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("\n".join(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]) + "\n")
    cfg = recipes.load(pipeline="smoke", seed=5).replace(**{"corpus.files": [str(words)]})
    out = tmp_path / "ds"
    generate(plan(out, cfg), progress=False)
    (out / shard_name(1, 2)).unlink()  # as if the run had been killed before it landed
    words.write_text("\n".join(["golf", "hotel", "india", "juliet", "kilo", "lima"]) + "\n")
    with pytest.raises(TextsynthError, match=r"corpus .*words\.txt changed"):
        generate(plan(out, cfg), progress=False)
    assert not (out / shard_name(1, 2)).exists()  # nothing mixed in


# --- cluster correctness ----------------------------------------------------------------------------

# --- secrets ------------------------------------------------------------------------------------------


def test_secret_uri_never_printed_or_written_and_object_store_lock(s3, tmp_path):
    """generate/verify with keys in the URI (no AWS_* variables): no output line, error, report or
    object holds the secret. A live holder's lock object refuses a run naming it; a dead one's is taken."""
    fs = s3.filesystem()
    uri = s3.uri("bucket/sec", credentials=True)
    live = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    marker, tmp = new_marker(), tempfile.mkdtemp(prefix="tsr-")
    env = {k: v for k, v in env_for(marker, tmp).items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull)
    gen = CLI + ["generate", "--out", uri, "--count", "20", "--shard-size", "10", "--pipeline", "smoke",
                 "--num-cpus", "1", "--quiet", "--report", str(tmp_path / "r.json")]

    def plant(pid: int) -> None:
        holder = {"host": socket.gethostname(), "pid": pid, "started": "2026-01-01T00:00:00+00:00",
                  "refreshed": time.time(), "token": "x"}
        with fs.open_output_stream(f"bucket/sec/{LOCK_NAME}") as f:
            f.write(json.dumps(holder).encode())

    runs = []
    try:
        plant(live.pid)
        locked = subprocess.run(gen, env=env, capture_output=True, text=True, timeout=300)
        assert f"pid {live.pid}" in one_error_line(locked)
        plant(dead.pid)
        runs.append(subprocess.run(gen, env=env, capture_output=True, text=True, timeout=300))
        assert runs[-1].returncode == 0, runs[-1].stdout + runs[-1].stderr
        runs.append(subprocess.run(CLI + ["verify", uri, "--rows", "5"], env=env, capture_output=True, text=True))
        assert runs[-1].returncode == 0, runs[-1].stderr
        bad = uri.replace(s3.secret_key, s3.secret_key + "-wrong")
        runs.append(subprocess.run(CLI + ["verify", bad], env=env, capture_output=True, text=True))
        runs.append(subprocess.run(gen[:3] + [bad] + gen[4:], env=env, capture_output=True, text=True, timeout=300))
        assert runs[-1].returncode != 0
        one_error_line(runs[-1])
    finally:
        live.kill()
        live.wait()
        kill_marked(marker)
        shutil.rmtree(tmp, ignore_errors=True)
    printed = "\n".join(r.stdout + r.stderr for r in [locked, *runs])
    assert "bucket/sec" in printed  # the lines name the dataset...
    written = [(tmp_path / "r.json").read_bytes()]
    infos = fs.get_file_info(pa.fs.FileSelector("bucket/sec", recursive=True))
    assert LOCK_NAME not in {i.base_name for i in infos}  # released
    for info in infos:
        with fs.open_input_stream(info.path) as f:
            written.append(f.read())
    for secret in (s3.secret_key, f"{s3.access_key}:"):  # ...but never the keys
        assert secret not in printed
        assert not any(secret.encode() in blob for blob in written)


def test_font_cache_is_private_and_checked_by_content(tmp_path, monkeypatch):
    from textsynth.assets import asset_root
    from textsynth.synth import fonts

    data = (asset_root() / "fonts" / "DejaVuSans.ttf").read_bytes()
    other = (asset_root() / "fonts" / "DejaVuSerif.ttf").read_bytes()
    monkeypatch.setattr(fonts, "_FONT_FILES", {})
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("TEXTSYNTH_FONT_CACHE", str(shared))
    with pytest.raises(FontError, match="writable by others"):
        fonts.font_file(data, "DejaVuSans.ttf")
    private = tmp_path / "private"
    monkeypatch.setenv("TEXTSYNTH_FONT_CACHE", str(private))
    planted_path = Path(fonts.font_cache_dir()) / f"{__import__('hashlib').sha256(data).hexdigest()[:24]}-DejaVuSans.ttf"
    assert oct(private.stat().st_mode & 0o777) == "0o700"
    planted_path.write_bytes((other * 2)[: len(data)])  # same size, another font
    assert Path(fonts.font_file(data, "DejaVuSans.ttf")).read_bytes() == data


# --- CLI errors -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_ds(ray_cluster, smoke, tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "ds"
    generate(plan(out, smoke), progress=False)
    return out


def _gen(out: str, *extra: str) -> list[str]:
    return CLI + ["generate", "--out", out, "--count", "10", "--pipeline", "smoke", "--num-cpus", "1", "--quiet",
                  *extra]


@pytest.mark.parametrize("case", ["file", "empty", "proc", "report-missing-folder"])
def test_cli_bad_out_is_one_line_and_writes_nothing(case, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    out, extra, expect = {
        "file": (str(a_file), [], "is a file"),
        "empty": ("", [], "--out is empty"),
        "proc": ("/proc/textsynth-ds", [], "/proc/textsynth-ds"),
        "report-missing-folder": (str(tmp_path / "ds"), ["--report", str(tmp_path / "no" / "r.json")],
                                  "does not exist"),
    }[case]
    r = subprocess.run(_gen(out, *extra), capture_output=True, text=True, timeout=120)
    assert expect in one_error_line(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written, no dataset folder


def test_cli_read_only_mount_is_one_line(tmp_path):
    """(The full-disk drill, one line naming the shard without a Ray traceback, is in test_pipeline.py.)"""
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no user+mount namespaces here")
    ro = tmp_path / "ro"
    ro.mkdir()
    script = f"mount -t tmpfs -o ro tmpfs {ro} && {' '.join(_gen(str(ro / 'ds')))}"
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    line = one_error_line(r)
    assert "Read-only file system" in line and str(ro) in line, line


def test_cli_deleted_shard_in_preview_and_debug_traceback(small_ds, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(small_ds, ds)
    (ds / shard_name(1, 2)).unlink()
    cmd = CLI + ["preview", "--from", str(ds), "--count", "20", "--out", str(tmp_path / "p.png")]
    line = one_error_line(subprocess.run(cmd, capture_output=True, text=True, timeout=120))
    assert shard_name(1, 2) in line, line
    debug = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "TEXTSYNTH_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr and debug.stderr.splitlines()[-1] == line


def test_driver_refuses_a_shard_it_cannot_see_as_written_naming_the_node(small_ds):
    """What the driver does after every task: the shard must be on the output filesystem with the
    size and sha256 the worker reported (here: a real shard, reported with other bytes / another name)."""
    from textsynth.generate.output import check_landed
    from textsynth.shards import storage

    fs, root = storage.locate(str(small_ds))
    entry = read_manifest(fs, root)["shards"][0]
    node = {"node_ip": "10.1.2.3", "node": "f" * 56}
    check_landed(fs, root, entry, node)  # the real one passes
    with pytest.raises(TextsynthError, match=r"node 10\.1\.2\.3 \(ffffffffffff\).*other sha256"):
        check_landed(fs, root, {**entry, "sha256": "0" * 64}, node)
    with pytest.raises(TextsynthError, match=r"data-00007-of-00009\.arrow written by node 10\.1\.2\.3.*missing"):
        check_landed(fs, root, {**entry, "file": "data-00007-of-00009.arrow"}, node)
