#!/usr/bin/env bash
# Create .venv and install textsynth with its train and test extras (idempotent).
# TORCH_SPEC picks the torch build; the default is the CPU wheel these machines keep on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
# the distribution was renamed textsynth -> textsynth-ste (same import name): drop an older install first
if .venv/bin/pip show -q textsynth >/dev/null 2>&1; then
    .venv/bin/pip uninstall -q -y textsynth
fi
.venv/bin/pip install -q -e '.[train,test]'
