"""Benchmarks that call package internals run end to end on tiny settings, so a change to
those internals that breaks a benchmark fails here (their figures are measured elsewhere)."""

from __future__ import annotations

import os
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


def test_fit_probe_reads_set_values_as_zoo_bench_run_does(tmp_path, ci_zoo_folder):
    home = tmp_path / "home"
    home.mkdir()
    (home / "zoos").symlink_to(ci_zoo_folder)  # the session's ci zoos, as the cache
    env = {**os.environ, "ZOO_BENCH_HOME": str(home)}

    def probe(*sets: str) -> subprocess.CompletedProcess:
        args = [a for kv in sets for a in ("--set", kv)]
        return subprocess.run(
            [sys.executable, "benchmarks/fit_probe.py", "ci-digits-ctc", "--suite", "ci",
             "--method", "sne", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )

    ok = probe("max_steps=2", "patience_steps=2", "log_features=false")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "'log_features': False" in ok.stdout and "val tau" in ok.stdout
    bad = probe("log_featurs=false")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "no hyperparameter or budget key 'log_featurs'" in bad.stderr
    assert "did you mean 'log_features'" in bad.stderr
