"""Benchmarks that call generation internals run end to end on tiny settings, so a change to
those internals that breaks a benchmark fails here (their figures are measured elsewhere)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_vit_inr_generation_benchmark_runs_both_families():
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_vit_inr.py", "--nets", "2", "--repeats", "1",
         "--steps", "5", "--train-fraction", "0.01"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(ln.startswith("vit ") and "speed-up" in ln for ln in lines), out.stdout
    assert any(ln.startswith("inr siren_") and "speed-up" in ln for ln in lines), out.stdout
