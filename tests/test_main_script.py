"""scripts/main.sh writes each suite to results/<suite>/ (`SUITE=ci` never touches the default
suite's files) and runs one job per (lane, seed) from a shared queue. Run on a copy whose env.sh
and zoo-bench are stand-ins that record their calls (`tasks --list-seeds` answers 0 1, or 3 7
when given --seeds and fails on `--seeds bad`; a run whose methods include `broken` fails)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import HANG_SECONDS

MAIN = Path(__file__).resolve().parents[1] / "scripts" / "main.sh"
STUB = """#!/usr/bin/env bash
echo "$@" >> "$(dirname "$0")/../../calls.txt"
if [ "$1" = tasks ]; then
    [[ "$*" == *"--seeds bad"* ]] && exit 2
    [[ "$*" == *--seeds* ]] && echo "3 7" || echo "0 1"
fi
[[ "$*" == *broken* ]] && exit 1
exit 0
"""


def stub_checkout(root: Path) -> None:
    """A copy of main.sh whose env.sh does nothing and whose zoo-bench records its calls."""
    (root / "scripts").mkdir()
    shutil.copy(MAIN, root / "scripts" / "main.sh")
    (root / "scripts" / "env.sh").write_text("true\n")
    zb = root / ".venv" / "bin" / "zoo-bench"
    zb.parent.mkdir(parents=True)
    zb.write_text(STUB)
    zb.chmod(zb.stat().st_mode | stat.S_IXUSR)


def run_main(root: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("SUITE", "RESULTS", "LANES", "SEEDS", "WORKERS")}
    return subprocess.run(["bash", str(root / "scripts" / "main.sh")], env={**clean, **env},
                          capture_output=True, text=True, timeout=HANG_SECONDS)


def calls(root: Path, command: str) -> list[str]:
    return [c for c in (root / "calls.txt").read_text().splitlines() if c.startswith(command)]


def jobs(runs: list[str]) -> list[tuple[str, str]]:
    """(methods, seed) of each recorded `run` call."""
    out = []
    for c in runs:
        words = c.split()
        out.append((words[words.index("--method") + 1], words[words.index("--seeds") + 1]))
    return out


@pytest.mark.parametrize(("suite", "folder"), [(None, "results/default"), ("ci", "results/ci")])
def test_main_writes_into_the_suites_own_folder(tmp_path, suite, folder):
    stub_checkout(tmp_path)
    run_main(tmp_path, **({"SUITE": suite} if suite else {})).check_returncode()
    runs = calls(tmp_path, "run ")
    assert len(runs) == 16  # 8 methods, one job each, x the suite's two seeds
    assert all(f"--results {folder}" in c for c in runs), runs
    assert calls(tmp_path, "leaderboard ") == [
        f"leaderboard --suite {suite or 'default'} --results {folder} --out {folder}"]


def test_every_lane_and_seed_runs_exactly_once_whatever_the_worker_count(tmp_path):
    stub_checkout(tmp_path)
    run_main(tmp_path, LANES="a,b c d", WORKERS="3").check_returncode()
    assert sorted(jobs(calls(tmp_path, "run "))) == [
        ("a,b", "0"), ("a,b", "1"), ("c", "0"), ("c", "1"), ("d", "0"), ("d", "1")]


def test_seeds_restricts_the_jobs_to_the_seeds_zoo_bench_expands(tmp_path):
    stub_checkout(tmp_path)
    run_main(tmp_path, SEEDS="3,7").check_returncode()
    assert calls(tmp_path, "tasks ") == ["tasks --suite default --list-seeds --seeds 3,7"]
    seeds = sorted({seed for _, seed in jobs(calls(tmp_path, "run "))})
    assert seeds == ["3", "7"]


def test_seeds_zoo_bench_rejects_stop_the_run_before_any_job(tmp_path):
    stub_checkout(tmp_path)
    assert run_main(tmp_path, SEEDS="bad").returncode != 0
    assert not calls(tmp_path, "run ") and not calls(tmp_path, "leaderboard ")


def test_a_failed_job_fails_the_run_after_the_others_finish(tmp_path):
    stub_checkout(tmp_path)
    done = run_main(tmp_path, LANES="broken fine")
    assert done.returncode == 1
    assert "seed 0: broken FAILED" in done.stderr and "rerun to finish" in done.stderr
    assert sorted(jobs(calls(tmp_path, "run "))) == [
        ("broken", "0"), ("broken", "1"), ("fine", "0"), ("fine", "1")]
    assert not calls(tmp_path, "leaderboard ")  # no board from a half-finished run
