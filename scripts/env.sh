#!/usr/bin/env bash
# Create .venv (once) and install zoo-bench into it.
# torch: a torch already importable is kept; otherwise the CPU build that lies on our
# machines (torch==2.13.*) is taken, so no multi-GB CUDA wheel is pulled. Users elsewhere
# install whatever torch they like first; pyproject.toml only asks for torch>=2.2.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" 2>/dev/null; then
    "$VPY" -m pip install -q 'torch==2.13.*'
fi
# ray: the optional `--executor ray` (tests/test_ray.py runs it in CI); it does not need torch.
"$VPY" -m pip install -q -e ".[test,ray]"
# The nfn extra (NFN / NFT baselines): nfn 0.1.2 declares an unpinned torch, so it goes in with
# --no-deps (the torch above stays); einops is its one other dependency and has none itself.
"$VPY" -m pip install -q --no-deps 'nfn==0.1.2' 'einops>=0.6'
