#!/usr/bin/env bash
# Install, then run the main job on the bundled defaults: generate a dataset with a local Ray
# cluster, verify it and draw a preview sheet. COUNT and OUT override the size and folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled
OUT=${OUT:-data/demo} COUNT=${COUNT:-10000}
job="textsynth generate --out $OUT --count $COUNT && textsynth verify $OUT && textsynth preview --from $OUT --count 10 --out $OUT/preview.png"
export PATH="$PWD/.venv/bin:$PATH"
if unshare -rn true 2>/dev/null; then
    exec unshare -rn sh -c "ip link set lo up && $job"
fi
exec sh -c "$job"
