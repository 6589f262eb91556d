"""How a failed command must look to its user: exactly one `error: ...` line, no traceback."""
from __future__ import annotations

import subprocess


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """The run failed with exactly one `error: ...` line and no traceback; returns that line."""
    out = r.stdout + r.stderr
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert r.returncode != 0 and len(errors) == 1, out
    assert "Traceback" not in out and "RayTaskError" not in out, out
    return errors[0]
