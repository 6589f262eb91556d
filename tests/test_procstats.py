"""Process CPU and memory accounting (psutil) sees another process's work and memory, and a gone PID."""
from __future__ import annotations

import subprocess
import sys

from textsynth.procstats import proc_cpu_seconds, proc_memory, rss_mb

CHILD = """
import sys, time
import numpy as np
block = np.ones(200 * 2**20, np.uint8)          # 200 MiB touched
t = time.process_time()
while time.process_time() - t < 0.6:             # 0.6 s of CPU
    pass
print("ready", flush=True)
sys.stdin.readline()
"""


def test_child_cpu_and_memory_are_measured_and_gone_pid_reads_empty():
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        cpu, mem, mb = proc_cpu_seconds(p.pid), proc_memory(p.pid), rss_mb(p.pid)
    finally:
        p.communicate("\n", timeout=30)
    assert 0.55 <= cpu < 30
    assert mem["rss"] >= 200 * 2**20 and mb is not None and mb >= 200
    assert mem["uss"] >= 190 * 2**20  # the block is private to the child
    assert proc_cpu_seconds(p.pid) == 0.0 and proc_memory(p.pid) == {} and rss_mb(p.pid) is None
    assert proc_cpu_seconds() > 0 and rss_mb() > 10  # this process
