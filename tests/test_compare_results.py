"""scripts/compare_results.py: a rerun into another folder is the same cell for cell, and a
changed prediction is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from zoo_bench.evaluator import Evaluator
from zoo_bench.runner import plan_jobs, run_jobs

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_results.py"


def compare(new: Path, old: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(new), str(old)],
                          capture_output=True, text=True, timeout=600)


def test_a_same_seed_rerun_compares_equal_and_a_changed_prediction_is_named(make_zoo, tmp_path):
    zoos = {"toy-d1-ctc": make_zoo(runs=15, name="toy-d1-ctc", dataset="d1")}
    for folder in ("first", "again"):
        jobs = plan_jobs(zoos, ["statnn"], ["standard"], (0, 1), "test_accuracy")
        run_jobs(jobs, tmp_path / folder, device="cpu", progress=False,
                 evaluator=Evaluator(n_boot=20), budgets={"statnn": {"max_epochs": 3}})
    same = compare(tmp_path / "again", tmp_path / "first")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "2 of 2 cells of" in same.stdout and "bit for bit" in same.stdout

    (path,) = [p for p in (tmp_path / "again" / "predictions").rglob("*.parquet")
               if pd.read_parquet(p)["seed"].iloc[0] == 1]
    preds = pd.read_parquet(path)
    preds.loc[0, "y_pred"] = float(preds.loc[0, "y_pred"]) + 1e-6
    preds.to_parquet(path)
    changed = compare(tmp_path / "again", tmp_path / "first")
    assert changed.returncode == 1
    assert "statnn standard toy-d1-ctc -> toy-d1-ctc seed 1: predictions differ" in changed.stdout
    assert "1 of 2 cells" in changed.stdout

    assert compare(tmp_path / "empty", tmp_path / "first").returncode == 2
