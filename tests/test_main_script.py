"""scripts/main.sh writes each suite to results/<suite>/: `SUITE=ci` never touches the default
suite's files. Run on a copy whose env.sh and zoo-bench are stand-ins that record their calls."""

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


@pytest.mark.parametrize(("suite", "folder"), [(None, "results/default"), ("ci", "results/ci")])
def test_main_writes_into_the_suites_own_folder(tmp_path, suite, folder):
    stub_checkout(tmp_path)
    env = {k: v for k, v in os.environ.items()
           if k not in ("SUITE", "RESULTS", "LANES", "SEEDS")}
    if suite:
        env["SUITE"] = suite
    subprocess.run(["bash", str(tmp_path / "scripts" / "main.sh")], env=env, check=True,
                   capture_output=True, timeout=HANG_SECONDS)
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    runs = [c for c in calls if c.startswith("run ")]
    assert len(runs) == 2  # two lanes
    assert all(f"--results {folder}" in c for c in runs), runs
    board = [c for c in calls if c.startswith("leaderboard ")]
    assert board == [f"leaderboard --suite {suite or 'default'} --results {folder} --out {folder}"]


def test_seeds_restricts_every_lane_to_those_seeds(tmp_path):
    stub_checkout(tmp_path)
    env = {**{k: v for k, v in os.environ.items() if k not in ("SUITE", "RESULTS", "LANES")},
           "SEEDS": "0-1"}
    subprocess.run(["bash", str(tmp_path / "scripts" / "main.sh")], env=env, check=True,
                   capture_output=True, timeout=HANG_SECONDS)
    runs = [c for c in (tmp_path / "calls.txt").read_text().splitlines() if c.startswith("run ")]
    assert len(runs) == 2 and all("--seeds 0-1" in c for c in runs), runs
