#!/usr/bin/env bash
# Install zoo-bench into .venv and run the whole check: ruff, then the test suite.
# pytest's exit status passes through, so "no tests collected" (5) fails like any error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
