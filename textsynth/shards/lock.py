"""One writer per dataset: an exclusive lock held for a whole generate run.

Local folders: fcntl.flock on `<dir>/.textsynth.lock`, which the kernel drops when the holder dies,
so a lock left by a killed run is never stale. Object stores: a lock object naming the holder
(host, pid, start time), refreshed as shards land; it is taken over when its holder is a dead
process on this host or it has not been refreshed for `TEXTSYNTH_LOCK_STALE_S` seconds (default 900).
Object stores without conditional writes cannot make this atomic: two runs starting within the same
instant may both take it; the read-back after writing narrows that window, it does not close it.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import time
from datetime import datetime, timezone

import pyarrow.fs as pafs

from textsynth.errors import TextsynthError
from textsynth.shards import storage

LOCK_NAME = ".textsynth.lock"


class LockedError(TextsynthError):
    """Another live run holds the dataset's lock; the message names it."""


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "token": secrets.token_hex(8)}


def _describe(where: str, h: dict) -> str:
    return (f"{storage.redact(where)} is being written by another textsynth run (host {h.get('host', '?')}, "
            f"pid {h.get('pid', '?')}, started {h.get('started', '?')}); wait for it to finish or stop it")


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DatasetLock:
    """`with DatasetLock(fs, root): ...` holds the dataset's lock, or raises LockedError naming the holder."""

    def __init__(self, fs: pafs.FileSystem, root: str, stale_s: float | None = None):
        self.fs, self.root = fs, root
        self.path = storage.join(root, LOCK_NAME)
        self.stale_s = float(os.environ.get("TEXTSYNTH_LOCK_STALE_S", 900)) if stale_s is None else stale_s
        self.holder = _holder()
        self._fd: int | None = None

    # --- local: flock ----------------------------------------------------------------------------

    def _acquire_local(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise TextsynthError(f"cannot write to {self.root}: {e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise TextsynthError(f"cannot lock {self.path}: {e.strerror or e}") from None
                try:
                    held = json.loads(os.pread(fd, 4096, 0) or b"{}")
                except ValueError:
                    held = {}
                os.close(fd)
                raise LockedError(_describe(self.root, held)) from None
            try:  # the holder before us may have removed the file after we opened it: lock the live one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.holder).encode(), 0)
        self._fd = fd

    def _release_local(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked, so no one else holds a lock on this inode
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    # --- object stores: a lock object ------------------------------------------------------------

    def _read_remote(self) -> dict | None:
        try:
            held = json.loads(storage.read_bytes(self.fs, self.path))
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}
        return held if isinstance(held, dict) else {}

    def _stale(self, held: dict) -> bool:
        if held.get("host") == self.holder["host"] and not _pid_alive(held.get("pid")):
            return True
        return time.time() - float(held.get("refreshed", 0) or 0) > self.stale_s

    def _write_remote(self) -> None:
        self.holder["refreshed"] = time.time()
        storage.atomic_write_bytes(self.fs, self.path, json.dumps(self.holder).encode())

    def _acquire_remote(self) -> None:
        held = self._read_remote()
        if held is not None and not self._stale(held):
            raise LockedError(_describe(self.root, held))
        self._write_remote()
        time.sleep(0.2)  # a racing writer's object would have replaced ours by now on a consistent store
        back = self._read_remote() or {}
        if back.get("token") != self.holder["token"]:
            raise LockedError(_describe(self.root, back))
        self._fd = -1

    def refresh(self) -> None:
        """Keep an object-store lock fresh (no-op locally: flock needs no refresh)."""
        if self._fd == -1:
            self._write_remote()

    def _release_remote(self) -> None:
        if self._fd != -1:
            return
        self._fd = None
        back = self._read_remote() or {}
        if back.get("token") == self.holder["token"]:
            try:
                self.fs.delete_file(self.path)
            except OSError:
                pass

    # --- both ----------------------------------------------------------------------------------------

    def acquire(self) -> DatasetLock:
        if storage.is_local(self.fs):
            self._acquire_local()
        else:
            self._acquire_remote()
        return self

    def release(self) -> None:
        if storage.is_local(self.fs):
            self._release_local()
        else:
            self._release_remote()

    def __enter__(self) -> DatasetLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
