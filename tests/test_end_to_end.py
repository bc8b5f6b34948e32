"""`zoo-bench run` and `zoo-bench leaderboard` as a user calls them, up to the real `ci` suite.

The end-to-end test starts from an empty cache (the run generates the ci zoos), kills the run
with SIGKILL once cells are stored, resumes it, and checks the leaderboard's numbers against
the stored Parquet rows.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import HANG_SECONDS

from zoo_bench.cli import main
from zoo_bench.commands.run_cmds import parse_names, parse_seeds
from zoo_bench.provenance import now
from zoo_bench.results import STATUS_OK, CellKey, new_row, read_cells, read_predictions, write_cell
from zoo_bench.suite import expected_for_suite, load_suite

METHODS = ("statnn", "mlp")
CI_EPOCHS = 8
ZOO_BENCH = [sys.executable, "-c", "from zoo_bench.cli import main; main()"]


def test_seed_lists_and_ranges():
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("0,1") == (0, 1)
    assert parse_seeds("3, 0-1,1") == (3, 0, 1)
    for bad in ("4-2", "a", "1,,2", "-1"):
        with pytest.raises(click.BadParameter):
            parse_seeds(bad)


def test_method_and_task_lists():
    suite_methods = ("statnn", "deepsets", "mlp", "sne")
    assert parse_names((), suite_methods) == suite_methods
    assert parse_names(("all",), suite_methods) == suite_methods
    assert parse_names(("mlp,statnn", "mlp"), suite_methods) == ("mlp", "statnn")
    assert parse_names(("my-plugin", "all"), suite_methods) == ("my-plugin", *suite_methods)


def test_run_names_an_unknown_method_before_doing_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["run", "--suite", "ci", "-m", "statn",
                                       "--results", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "did you mean 'statnn'" in result.output
    assert not (tmp_path / "home").exists() and not (tmp_path / "r").exists()


def test_leaderboard_without_results_says_what_to_do(tmp_path):
    result = CliRunner().invoke(main, ["leaderboard", "--results", str(tmp_path)])
    assert result.exit_code == 1 and "run `zoo-bench run` first" in result.output


def test_leaderboard_command_writes_its_pages_where_asked(tmp_path):
    for seed in (0, 1):
        for method, tau in (("statnn", 0.6), ("mlp", 0.2)):
            key = CellKey(method, "standard", "z", "z", seed, "test_accuracy")
            write_cell(tmp_path, new_row(key, status=STATUS_OK, kendall_tau=tau + seed / 10,
                                         timestamp=now()))
    result = CliRunner().invoke(main, ["leaderboard", "--results", str(tmp_path),
                                       "--out", str(tmp_path / "pages")])
    assert result.exit_code == 0, result.output
    assert "0.650 ± 0.071 (#1)" in result.output
    assert (tmp_path / "pages" / "leaderboard.html").exists()
    assert "0.250 ± 0.071 (#2)" in (tmp_path / "pages" / "leaderboard.md").read_text()


def _cell_files(results: Path) -> list[Path]:
    return list((results / "cells").rglob("*.parquet"))


def _run_cli(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([*ZOO_BENCH, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def ci_suite_file(tmp_path: Path) -> Path:
    """benchmark.toml with short training budgets added to the ci suite (to keep the test fast)."""
    suite = load_suite("ci")
    text = suite.path.read_text() + "".join(
        f"\n[suites.ci.budgets.{m}]\nmax_epochs = {CI_EPOCHS}\n"
        for m in METHODS if m not in suite.budgets
    )
    path = tmp_path / "benchmark.toml"
    path.write_text(text)
    assert all(load_suite("ci", path).budget(m) for m in METHODS)
    return path


@pytest.mark.slow
def test_ci_suite_run_killed_resumed_and_ranked(tmp_path, ci_zoo_folder):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "zoos").symlink_to(ci_zoo_folder)  # the session's ci zoos, as the cache
    env = {**os.environ, "ZOO_BENCH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    results, suite_file = tmp_path / "results", ci_suite_file(tmp_path)
    args = ["run", "--suite", "ci", "--suite-file", str(suite_file), "-m", ",".join(METHODS),
            "--results", str(results), "--device", "cpu", "--bootstrap-iters", "50", "--quiet"]

    child = subprocess.Popen([*ZOO_BENCH, *args], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG_SECONDS
    while not _cell_files(results):
        assert child.poll() is None, child.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no cell stored within {HANG_SECONDS} s: hung?"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    killed = read_cells(results)
    expected = expected_for_suite(load_suite("ci"), killed)
    total = sum(expected.n_cells(t) for t in expected.tasks) * len(METHODS)
    assert 1 <= len(killed) < total

    resumed = _run_cli(*args, env=env, timeout=HANG_SECONDS)
    assert resumed.returncode == 0, resumed.stderr[-3000:] + resumed.stdout[-3000:]
    assert f"{total - len(killed)} cells computed, {len(killed)} already stored" in resumed.stdout
    rows = read_cells(results)
    assert len(rows) == total and rows["cell_key"].is_unique
    assert set(rows["status"]) == {STATUS_OK}
    for m in METHODS:
        budget = json.dumps(load_suite("ci", suite_file).budget(m), sort_keys=True)
        assert (rows.loc[rows["method"] == m, "budget"] == budget).all()
    assert set(killed["cell_key"]) <= set(rows["cell_key"])
    assert rows["run_id"].nunique() == 2
    assert len(read_predictions(results)) == rows["n"].sum()

    board = _run_cli("leaderboard", "--results", str(results), "--suite-file", str(suite_file),
                     env=env, timeout=HANG_SECONDS)
    assert board.returncode == 0, board.stderr[-3000:]
    md = (results / "leaderboard.md").read_text()
    html = (results / "leaderboard.html").read_text()
    assert "suite `ci`" in md and html.count("data:image/png;base64,") >= 3
    for method in METHODS:
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {method} |"))
        shown = re.findall(r"(-?\d\.\d{3}) ± (\d\.\d{3}) \(#\d\)", line)
        assert len(shown) == len(expected.tasks), line
        for task, (mean, std) in zip(expected.tasks, shown, strict=True):
            mine = rows[(rows["method"] == method) & (rows["task"] == task)]
            assert len(mine) == expected.n_cells(task)
            per_seed = mine.groupby("seed")["kendall_tau"].mean()
            assert float(mean) == pytest.approx(per_seed.mean(), abs=5e-4), (method, task)
            assert float(std) == pytest.approx(np.std(per_seed, ddof=1), abs=5e-4), (method, task)
    for absent in ("deepsets", "sne"):
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {absent} |"))
        assert line.count("incomplete (0/") == len(expected.tasks)
