"""Find and end only the processes a test started: they carry a unique marker in their environment."""
from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path


def new_marker() -> str:
    return f"ts-{uuid.uuid4().hex[:12]}"


def env_for(marker: str, tmp: str, **extra: str) -> dict[str, str]:
    """This environment plus the marker, for a command that starts Ray daemons (in their own temp dir `tmp`)."""
    return {**os.environ, "TEXTSYNTH_TEST_MARK": marker, "RAY_TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled", **extra}


def marked_pids(marker: str) -> list[int]:
    needle = f"TEXTSYNTH_TEST_MARK={marker}".encode()
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            if needle in (d / "environ").read_bytes().split(b"\0"):
                out.append(int(d.name))
        except OSError:
            continue
    return out


def kill_marked(marker: str, timeout: float = 10.0) -> None:
    """SIGKILL every process carrying the marker (a Ray cluster and its workers), then wait for them."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = marked_pids(marker)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmdline_pids(prefix: bytes) -> list[int]:
    """PIDs whose command line (Ray's process title) starts with `prefix`."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(prefix):
                    out.append(int(d.name))
            except OSError:
                continue
    return out
