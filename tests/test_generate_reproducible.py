"""Generated zoos do not depend on the CPU's instruction set: each kernel library (ATen, oneDNN,
MKL) picks AVX-512, AVX2 or SSE code at run time and each choice changes the trained weights, so
the generation workers pin them (`PINNED_ENV`) whatever the caller's environment.

Different CPUs are simulated on this one by capping the instruction sets through the same
variables: first the test shows that the caps change the bytes when generation is not pinned,
then that pinned generation gives the same bytes under either cap, and the same bytes as an
unpinned run made with exactly the pinned caps.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
import torch
from conftest import HANG_SECONDS

from zoo_bench.generate.population import PINNED_ENV

TINY = {"datasets": ["digits"], "families": ["ctc"], "runs": 4, "epochs": 1}
# A caller whose environment asks for other kernels than the pinned ones.
AVX2_CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
CAP_NAMES = set(PINNED_ENV) | set(AVX2_CAPS)

SCRIPT = """
import json, sys
import torch
from zoo_bench.generate import generate_preset
out, isolate, overrides = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3])
path = generate_preset("ci", out_dir=out, progress=False, workers=1, overrides=overrides,
                       isolate=isolate)["ci-digits-ctc"]
manifest = json.loads((path / "manifest.json").read_text())
print(json.dumps({"sha": manifest["files"]["weights.f32"], "kernels": manifest["source"]["kernels"],
                  "capability": torch.backends.cpu.get_cpu_capability()}))
"""


def generate(tmp_path, name: str, caps: dict[str, str], isolate: bool) -> dict:
    """Generate the tiny zoo in a fresh Python process whose environment holds `caps` only."""
    env = {k: v for k, v in os.environ.items() if k not in CAP_NAMES}
    env.update(caps, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / name), "1" if isolate else "0",
         json.dumps(TINY)], env=env, capture_output=True, text=True, timeout=HANG_SECONDS,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="the pins and their envelope are for x86-64 CPUs")
@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX"),
                    reason="this CPU has no AVX2: the AVX2 cap cannot differ from the baseline")
def test_instruction_set_caps_change_the_bytes_unless_the_workers_pin_them(tmp_path):
    native = generate(tmp_path, "native", {}, isolate=False)
    capped = generate(tmp_path, "capped", PINNED_ENV, isolate=False)
    assert native["capability"] != "DEFAULT" and native["kernels"] is None
    assert native["sha"] != capped["sha"], "the caps did not change the kernels on this CPU"

    pinned_native = generate(tmp_path, "pinned-native", {}, isolate=True)
    pinned_avx2 = generate(tmp_path, "pinned-avx2", AVX2_CAPS, isolate=True)
    assert pinned_avx2["capability"] == "AVX2"  # the caller really ran other kernels
    assert pinned_native["sha"] == pinned_avx2["sha"] == capped["sha"]
    assert pinned_native["kernels"] == PINNED_ENV
