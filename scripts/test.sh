#!/usr/bin/env bash
# Install everything into .venv and run the test suite. Ray starts inside a loopback-only network
# namespace when the machine allows one (unshare -rn), so nothing leaves the host and the code is
# proven to run offline. Extra arguments go to pytest (e.g. -k loader, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1
if unshare -rn true 2>/dev/null; then
    exec unshare -rn sh -c 'ip link set lo up && exec .venv/bin/python -m pytest "$@"' sh "$@"
fi
exec .venv/bin/python -m pytest "$@"
