"""Process CPU time and memory through psutil (portable; the same figures on Linux, macOS, Windows)."""
from __future__ import annotations

import psutil

_MAP_FIELDS = ("private_clean", "private_dirty", "shared_clean", "shared_dirty", "anonymous")


def proc_cpu_seconds(pid: int | None = None) -> float:
    """user + system CPU seconds of process `pid` (default: this one), all threads; 0.0 if it is gone."""
    try:
        t = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return t.user + t.system


def rss_mb(pid: int | None = None) -> float | None:
    """Resident memory of process `pid` (default: this one) in MiB; None if it cannot be read."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def proc_memory(pid: int | None = None) -> dict[str, int]:
    """RSS, plus USS/PSS and the private/shared/anonymous split in bytes where the platform has them."""
    try:
        p = psutil.Process(pid)
        out = {"rss": p.memory_info().rss}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}
    try:
        full = p.memory_full_info()
        out.update({k: getattr(full, k) for k in ("uss", "pss") if hasattr(full, k)})
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    if hasattr(p, "memory_maps"):
        try:
            maps = p.memory_maps(grouped=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied, NotImplementedError):
            maps = []
        for name in _MAP_FIELDS:
            if maps and hasattr(maps[0], name):
                out[name] = sum(getattr(m, name) for m in maps)
    return out
