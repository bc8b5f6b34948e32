#!/usr/bin/env bash
# Create .venv (once) and install zoo-bench into it with the extras the checks use (test, ray,
# nfn). Which torch you get, exactly:
#   - a torch already importable in .venv is kept (install your own build there first, e.g. a
#     CUDA one, and this script leaves it alone);
#   - else, with TORCH_INDEX set, torch comes from PyTorch's own wheel index:
#     TORCH_INDEX=cpu is https://download.pytorch.org/whl/cpu (the CPU build: no CUDA
#     libraries), TORCH_INDEX=cu126 (or another tag) that CUDA build, and a full https:// or
#     file:// URL is used as given;
#   - else `pip install 'torch==2.13.*'` from pip's configured index. From the public PyPI on
#     Linux x86-64 that is the CUDA build, which pulls the nvidia-* libraries (issue 30 measured
#     a 5.6 GB venv that way, against 1.8 GB with the CPU build). On the project's development
#     machines pip's configuration finds a CPU wheel on disk (torch 2.13.0+cpu in
#     /opt/wheels), so this line installs the CPU build there, offline.
# The last line printed says which build is installed. pyproject.toml itself only asks for
# torch>=2.2, so `pip install -e .` in an environment of your own keeps your torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" 2>/dev/null; then
    case "${TORCH_INDEX:-}" in
        "") "$VPY" -m pip install -q 'torch==2.13.*' ;;
        http://* | https://* | file://*)
            "$VPY" -m pip install -q --index-url "$TORCH_INDEX" 'torch==2.13.*' ;;
        *) "$VPY" -m pip install -q --index-url "https://download.pytorch.org/whl/$TORCH_INDEX" \
               'torch==2.13.*' ;;
    esac
fi
# ray: the optional `--executor ray` (tests/test_ray.py runs it in CI); it does not need torch.
"$VPY" -m pip install -q -e ".[test,ray]"
# The nfn extra (NFN / NFT baselines): nfn 0.1.2 declares an unpinned torch, so it goes in with
# --no-deps (the torch above stays); einops is its one other dependency and has none itself.
"$VPY" -m pip install -q --no-deps 'nfn==0.1.2' 'einops>=0.6'
"$VPY" -c "import torch; print(f'zoo-bench: .venv has torch {torch.__version__}', \
'(CUDA ' + torch.version.cuda + ')' if torch.version.cuda else '(CPU build)')"
