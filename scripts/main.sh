#!/usr/bin/env bash
# The main job: install, then run every method on every task of the default suite
# (zoos are generated offline when absent) and render the leaderboard into results/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
SUITE=${SUITE:-default}
.venv/bin/zoo-bench run --suite "$SUITE" --method all --task all --results results
.venv/bin/zoo-bench leaderboard --suite "$SUITE" --results results --out results
