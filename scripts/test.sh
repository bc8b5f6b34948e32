#!/usr/bin/env bash
# Install zoo-bench into .venv and run the whole check: ruff, then the test suite (on every core).
# pytest's exit status passes through, so "no tests collected" (5) fails like any error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/ruff check .
# One worker per core (PYTEST_WORKERS=1 for one process); a module's tests stay on one worker,
# so its fixtures are built once. Every test pins torch to one thread itself (conftest).
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
