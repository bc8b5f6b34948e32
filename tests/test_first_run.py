"""A first run that tells the truth: `zoo-bench run` names its suite, prints the plan and a cost
estimate from measured figures before it starts (`--dry-run` stops there), `zoo-bench suites`
lists every suite with its size and cost, and Ctrl-C says what was kept and how to resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo_bench.cli import main
from zoo_bench.plan import (
    MEASURED_GENERATION,
    duration,
    estimate_fit,
    estimate_generation,
    fit_costs,
)
from zoo_bench.results import read_cells
from zoo_bench.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
TINY = """
[generate.tiny]
datasets = ["digits"]
families = ["ctc"]
runs = 10
epochs = 1
checkpoints = [0, 1]
batch_size = 8

[suites.tiny]
zoos = "generate:tiny"
tasks = ["standard"]
methods = ["statnn"]
seeds = [0, 1]

[suites.tiny.budgets.statnn]
max_epochs = 2
"""


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """Each test starts from a cache of its own with no zoo in it."""
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "empty-home"))


def invoke(*args: str) -> object:
    return CliRunner(env={"COLUMNS": "80"}).invoke(main, list(args))


def measured(suite: str, method: str):
    budget = json.dumps(load_suite(suite).budget(method), sort_keys=True)
    return next(c for c in fit_costs() if (c.suite, c.method, c.budget) ==
                (suite, method, budget))


def cost(suite: str, method: str) -> float:
    return measured(suite, method).seconds


def test_the_ci_plan_counts_zoos_fits_and_cells_and_prices_them_from_measurements(tmp_path):
    out = invoke("run", "--suite", "ci", "--dry-run", "--results", str(tmp_path / "r"))
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.startswith("Suite ci\n  from ")
    assert "the default" not in text  # the suite was named
    assert "Plan: 8 methods x 3 tasks x 2 seeds (0, 1)" in text
    assert "zoos:  6 to generate (288 training runs), 0 present" in text
    assert "fits:  96 (one per method, seed and training zoo), 0 already done" in text
    assert "cells: 576, 0 already stored" in text
    for method in load_suite("ci").methods:  # 12 fits each, at the measured s/fit
        row = re.search(rf"^    {method} +12 +([0-9.]+) ", text, flags=re.M)
        assert row and float(row[1]) == pytest.approx(cost("ci", method), abs=0.05), method
    fits = sum(12 * cost("ci", m) + 72 * measured("ci", m).predict_seconds
               for m in load_suite("ci").methods)  # 72 cells per method
    assert f"fits, one after another: {duration(fits)}" in text
    assert "Ctrl-C stops the run; the same command resumes it." in text
    assert not (tmp_path / "r").exists()  # a dry run makes nothing
    assert all(len(line) <= 80 for line in text.splitlines())


def test_the_default_run_says_it_is_the_default_and_suggests_the_small_suite(tmp_path):
    out = invoke("run", "--plan", "--results", str(tmp_path / "r"))
    assert out.exit_code == 0, out.output
    assert out.output.startswith(
        "Suite default, the default (no --suite given; `zoo-bench suites` lists all)\n")
    assert "9 to generate (7,200 training runs)" in out.output
    assert "For a first try, the small ci suite takes about" in out.output
    assert "zoo-bench run --suite ci" in out.output


def test_a_suite_whose_methods_never_fit_is_priced_at_what_was_measured(tmp_path):
    """The arch suite's nfn family declines ViTs: none of its fits runs, so none is priced."""
    out = invoke("run", "--suite", "arch", "--dry-run", "--results", str(tmp_path / "r"))
    assert out.exit_code == 0, out.output
    assert re.search(r"^    nfn_np +0 ", out.output, flags=re.M)
    assert "and 90 not applicable (never fitted)" in out.output


def test_estimates_rest_on_the_closest_measurement():
    ci = load_suite("ci").budget("statnn")
    same = estimate_fit("ci", "statnn", ci, 29, steps=False)
    assert same.seconds == pytest.approx(cost("ci", "statnn"))
    assert "results/ci" in same.basis
    twice = estimate_fit("ci", "statnn", ci, 58, steps=False)  # epochs: linear in networks
    assert twice.seconds == pytest.approx(2 * same.seconds)
    sne = load_suite("ci").budget("sne")
    assert estimate_fit("ci", "sne", sne, 58, steps=True).seconds == pytest.approx(
        cost("ci", "sne"))  # a step budget does not grow with the networks
    other = estimate_fit("mine", "statnn", {"max_epochs": 3}, 29, steps=False)
    assert "rough" in other.basis
    assert estimate_fit("ci", "no-such-method", {}, 29, steps=False).seconds is None
    never = estimate_fit("arch", "nfn_np", load_suite("arch").budget("nfn_np"), 600, False)
    assert never.seconds == 0 and not never.fitted


def test_progress_weights_are_the_measured_cost_of_a_cell_even_when_stored():
    """A stored cell found stale is computed again: its weight is its cost, never zero."""
    from zoo_bench.plan import plan_run

    suite = load_suite("ci")
    plan = plan_run(suite, ["statnn", "sne"], ["standard"], [0],
                    results=ROOT / "results" / "ci")  # every cell stored
    assert plan.stored == plan.cells and plan.fit_seconds == 0
    sne, statnn = plan.cell_seconds("sne"), plan.cell_seconds("statnn")
    assert sne == pytest.approx(cost("ci", "sne") + measured("ci", "sne").predict_seconds)
    assert sne > 10 * statnn > 0
    assert plan.cell_seconds("a-plug-in") == pytest.approx((sne + statnn) / 2)


def test_generation_estimates_scale_the_measured_runs():
    ci = MEASURED_GENERATION["ci"]
    table = {"families": ["ctc"], "epochs": ci.epochs}
    assert estimate_generation("ci", table, ci.runs).seconds == pytest.approx(ci.seconds)
    mine = estimate_generation("mine", {"families": ["ctc"], "epochs": 2 * ci.epochs}, 10)
    assert mine.seconds == pytest.approx(ci.per_run_epoch * 10 * 2 * ci.epochs)
    assert "rough" in mine.basis


def test_the_shipped_costs_are_those_of_the_committed_ci_results():
    """zoo_bench/fit_costs.toml is what scripts/fit_costs.py makes of results/ci (the other
    suites' folders are read the same way; ci's is the smallest)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_costs", ROOT / "scripts" / "fit_costs.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    made = script.entries(ROOT / "results" / "ci")
    shipped = [c.__dict__ for c in fit_costs() if c.suite == "ci"]
    assert [{**e, "commits": tuple(e["commits"]), "measured": tuple(e["measured"])}
            for e in made] == shipped


def test_suites_lists_every_suite_with_its_size_and_cost():
    out = invoke("suites")
    assert out.exit_code == 0, out.output
    for name in ("ci", "default", "arch", "inr"):
        assert re.search(rf"^│ {name} +│", out.output, flags=re.M), out.output
    ci_row = next(line for line in out.output.splitlines() if line.startswith("│ ci "))
    assert "6 (288)" in ci_row and "8 x 3 x 2" in ci_row and "576" in ci_row
    assert "…" not in out.output
    assert all(len(line) <= 80 for line in out.output.splitlines())


@pytest.fixture
def tiny_home(tmp_path, monkeypatch) -> Path:
    """A cache holding the tiny suite's one zoo (10 runs, 1 epoch), and its suite file."""
    from zoo_bench.generate import generate_preset
    from zoo_bench.spec import read_benchmark_toml

    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    table = read_benchmark_toml(path)[1]["generate"]["tiny"]
    generate_preset("tiny", out_dir=tmp_path / "home" / "zoos", table=table, progress=False,
                    isolate=False)
    return path


def test_ctrl_c_says_what_was_kept_and_that_the_same_command_resumes(tiny_home, tmp_path,
                                                                     monkeypatch):
    from zoo_bench import runner

    real, calls = runner._Runner.run_group, []

    def second_group_interrupted(self, group):
        calls.append(group)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, group)

    monkeypatch.setattr(runner._Runner, "run_group", second_group_interrupted)
    args = ["run", "--suite-file", str(tiny_home), "--results", str(tmp_path / "r"), "--quiet"]
    out = invoke(*args)
    assert out.exit_code == 130, out.output
    assert "Interrupted: 1 cells finished in this run and 1 of the 2 planned are stored" \
        in out.output
    assert "Run the same command again to resume" in out.output
    assert len(read_cells(tmp_path / "r")) == 1

    monkeypatch.setattr(runner._Runner, "run_group", real)
    again = invoke("--log-file", str(tmp_path / "run.log"), *args)
    assert again.exit_code == 0, again.output
    assert "1 cells computed, 1 already stored" in again.output
    log = (tmp_path / "run.log").read_text()  # the runner's records, in the CLI's log file
    assert "DEBUG zoo_bench.runner: fitted statnn standard tiny-digits-ctc" in log
