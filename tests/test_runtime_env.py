"""textsynth reaches a two-node Ray cluster through a runtime environment, not a pre-installed package.

Both nodes and the job driver run a fresh venv in which textsynth is NOT importable (its other
dependencies are); `ray job submit --runtime-env-json '{"py_modules": [WHEEL]}'` ships the built wheel.
Run through scripts/test.sh (loopback-only network namespace); daemons are ended by PID.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from textsynth.shards.dataset import read_manifest, verify_dataset

from .support.procs import free_port, kill_marked, new_marker
from .test_pipeline import reference_shas, smoke_cfg  # noqa: F401 (fixture)
from .support.wheelenv import ROOT, build_wheel, clean_env, make_venv

pytest.importorskip("ray")

PROBE = '''
import json, time, ray, textsynth
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init()
deadline = time.time() + 120  # `ray start` returns before the second node has registered
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.time() < deadline:
    time.sleep(0.5)
@ray.remote(num_cpus=1)
def where():
    import textsynth
    return textsynth.__file__, ray.get_runtime_context().get_node_id()
pinned = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
          for n in ray.nodes() if n["Alive"]]
print("PROBE " + json.dumps({"driver": textsynth.__file__, "tasks": ray.get(pinned)}))
'''


def test_wheel_in_py_modules_runs_generate_on_a_bare_two_node_cluster(smoke_cfg, tmp_path):  # noqa: F811
    wheel = build_wheel(tmp_path / "build")
    py = make_venv(tmp_path / "bare", with_pip=True)  # Ray pip-installs py_modules wheels with `pip --target`
    bare_bin = str(py.parent)
    marker, ray_tmp, node_tmp = new_marker(), tempfile.mkdtemp(prefix="tsr-"), tempfile.mkdtemp(prefix="tsr-")
    path = os.pathsep.join([bare_bin] + [p for p in os.environ["PATH"].split(os.pathsep)
                                         if not Path(p).resolve().is_relative_to(ROOT)])
    # the nodes already hold textsynth's dependencies: Ray must install the wheel alone
    env = clean_env(TEXTSYNTH_TEST_MARK=marker, RAY_TMPDIR=ray_tmp, PATH=path, PIP_NO_DEPS="1", PIP_NO_INDEX="1")
    work = tmp_path / "cwd"  # nothing of the checkout on any node's or driver's path
    work.mkdir()
    (work / "probe.py").write_text(PROBE)
    not_there = subprocess.run([str(py), "-c", "import textsynth"], cwd=work, env=env, capture_output=True, text=True)
    assert not_there.returncode != 0 and "No module named 'textsynth'" in not_there.stderr
    ray_cli = [str(py), "-m", "ray.scripts.scripts"]
    port, dash = free_port(), free_port()
    out = tmp_path / "ds"
    try:
        for args in (["--head", f"--port={port}", f"--temp-dir={ray_tmp}", "--include-dashboard=true",
                      "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}"],
                     # a second node has its own folders (runtime_resources/ included), as on another host
                     [f"--address=127.0.0.1:{port}", f"--temp-dir={node_tmp}",
                      f"--dashboard-agent-listen-port={free_port()}"]):
            r = subprocess.run(ray_cli + ["start", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                          "--disable-usage-stats"] + args,
                               cwd=work, env=env, capture_output=True, text=True, timeout=180)
            assert r.returncode == 0, r.stdout + r.stderr
        entry = (f"python probe.py && python -m textsynth generate --out {out} --count 40 --shard-size 10 "
                 f"--pipeline smoke --seed 5 --quiet --report {tmp_path / 'r.json'}")
        for _ in range(10):  # the head's agent may not take jobs yet just after `ray start` returns
            job = subprocess.run(ray_cli + ["job", "submit", f"--address=http://127.0.0.1:{dash}",
                                            "--runtime-env-json", json.dumps({"py_modules": [str(wheel)]}),
                                            "--working-dir", str(work), "--", "sh", "-c", entry],
                                 cwd=work, env=env, capture_output=True, text=True, timeout=480)
            if "No available agent to submit job" not in job.stderr:
                break
            time.sleep(2)
    finally:
        kill_marked(marker)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        shutil.rmtree(node_tmp, ignore_errors=True)
    assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
    probe = json.loads(next(line for line in job.stdout.splitlines() if line.startswith("PROBE "))[6:])
    files = [probe["driver"]] + [f for f, _ in probe["tasks"]]
    assert all("runtime_resources" in f and "py_modules" in f and not Path(f).is_relative_to(ROOT) for f in files)
    assert len({node for _, node in probe["tasks"]}) == 2  # tasks ran on both nodes
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["written"] == list(range(4)) and len(report["nodes"]) == 2
    assert verify_dataset(str(out)) == []
    got = {e["file"]: e["sha256"] for e in read_manifest(None, str(out))["shards"]}
    assert got == reference_shas(smoke_cfg, 40, 10, tmp_path / "ref")
