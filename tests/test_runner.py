"""Runner: one fit per fit key, one stored row per cell, overwrite modes, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HANG_SECONDS

from zoo_bench import provenance
from zoo_bench.errors import ZooBenchError
from zoo_bench.evaluator import Evaluator
from zoo_bench.predictor import Predictor, register_predictor
from zoo_bench.results import cell_path, config_mismatch, read_cells, read_predictions
from zoo_bench.runner import expected_cells, make_predictor, method_config, plan_jobs, run_jobs

HERE = Path(__file__).resolve().parent
FITS: list[tuple[str, int]] = []
FAST = Evaluator(n_boot=20)


@register_predictor("fake-mean")
class MeanWeight(Predictor):
    """Predicts a network's mean weight (times `scale`); records every fit in FITS."""

    defaults = {"scale": 1.0, "sleep": 0.0}

    def fit(self, train, val, target, ctx):
        FITS.append((train.name, ctx.seed))
        time.sleep(self._hparams["sleep"])

    def predict(self, zoo):
        return np.array([self._hparams["scale"] * float(np.mean(zoo.flat(i)))
                         for i in range(len(zoo))])


@register_predictor("fake-picky")
class Picky(MeanWeight):
    """Supports no architecture at all."""

    def supports(self, arch):
        return False


@register_predictor("fake-one-zoo")
class OneZooOnly(MeanWeight):
    """Supports every architecture, but trains only where train and val come from one zoo."""

    def fit_problem(self, train, val):
        return None if train.name == "toy-d1-ctc" else f"cannot train on {train.name}"


@register_predictor("fake-broken")
class Broken(MeanWeight):
    """Its fit always fails."""

    def fit(self, train, val, target, ctx):
        raise RuntimeError("diverged on purpose")


@pytest.fixture
def zoos(make_zoo, tmp_path, monkeypatch):
    """Two toy ctc zoos on different datasets (so cross_dataset has 4 pairs); cache in tmp."""
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    FITS.clear()
    return {n: make_zoo(runs=15, seed=i, name=n, dataset=d)
            for i, (n, d) in enumerate([("toy-d1-ctc", "d1"), ("toy-d2-ctc", "d2")])}


def run(jobs, results, **kw):
    """The runner as the tests use it: on the CPU, quietly, with a short bootstrap."""
    return run_jobs(jobs, results, **{"device": "cpu", "progress": False, "evaluator": FAST, **kw})


def jobs_for(zoos, methods=("fake-mean",), seeds=(0, 1)):
    return plan_jobs(zoos, methods, ["standard", "cross_dataset"], seeds, "test_accuracy")


def test_each_fit_key_is_fitted_once_and_every_cell_is_stored(zoos, tmp_path):
    jobs = jobs_for(zoos)
    assert len(jobs) == (2 + 4) * 2
    report = run(jobs, tmp_path / "results",
                      budgets={"fake-mean": {"max_epochs": 3, "scale": 2.0}})

    assert sorted(FITS) == sorted((z, s) for z in zoos for s in (0, 1))
    assert len(report.computed) == 12 and not report.errors
    rows = read_cells(tmp_path / "results")
    assert len(rows) == 12 and set(rows["status"]) == {"ok"}
    assert set(rows["fit_shared_by"]) == {3}
    assert rows.groupby("fit_key").size().tolist() == [3, 3, 3, 3]

    job = next(j for j in jobs if j.cell.task == "cross_dataset" and j.cell.source != j.cell.target)
    row = rows.set_index("cell_key").loc[job.key.digest]
    assert (row.split_sha256_train, row.split_sha256_test) == (job.cell.train_sha256,
                                                               job.cell.test_sha256)
    assert row.source_sha256 == zoos[job.cell.source].manifest_sha256
    assert row.target_sha256 == zoos[job.cell.target].manifest_sha256
    assert json.loads(row.hparams) == {"scale": 2.0, "sleep": 0.0}
    assert json.loads(row.budget) == {"max_epochs": 3, "scale": 2.0}
    assert row.n_test == len(job.cell.test) and row.n == len(job.cell.test)
    assert len(row.git_commit) == 40 and row.device.startswith("cpu")
    assert row.fit_seconds >= 0 and row.predict_seconds >= 0 and row.peak_rss_mb > 0

    preds = read_predictions(tmp_path / "results", [job.key.digest])
    test = job.cell.test
    np.testing.assert_array_equal(preds["network_id"], test.table["network_id"])
    np.testing.assert_allclose(preds["y_true"], test.targets("test_accuracy"))
    want = [2 * np.mean(test.flat(i)) for i in range(len(test))]
    np.testing.assert_allclose(preds["y_pred"], want, rtol=1e-6)


def test_only_missing_skips_stored_cells_never_refuses_always_redoes(zoos, tmp_path):
    jobs, results = jobs_for(zoos), tmp_path / "results"
    run(jobs, results)
    FITS.clear()

    again = run(jobs, results)
    assert (len(again.skipped), len(again.computed), FITS) == (12, 0, [])

    cell_path(results, jobs[5].key).unlink()
    resumed = run(jobs, results)
    assert resumed.computed == [jobs[5].key] and len(FITS) == 1

    with pytest.raises(ZooBenchError, match="12 of 12 planned cells are already stored"):
        run(jobs, results, overwrite="never")
    FITS.clear()
    redo = run(jobs, results, overwrite="always")
    assert len(redo.computed) == 12 and len(FITS) == 4
    assert len(read_cells(results)) == 12
    with pytest.raises(ZooBenchError, match="overwrite must be one of"):
        run(jobs, results, overwrite="sometimes")


def test_unsupported_architectures_are_stored_as_not_applicable(zoos, tmp_path):
    report = run(jobs_for(zoos, ["fake-picky"]), tmp_path)
    assert len(report.not_applicable) == 12 and FITS == []
    rows = read_cells(tmp_path)
    assert set(rows["status"]) == {"not_applicable"} and rows["kendall_tau"].isna().all()
    assert rows["error"].str.startswith("not applicable: supports is False for architecture").all()
    assert read_predictions(tmp_path).empty


def test_a_fit_problem_makes_the_groups_cells_not_applicable_without_fitting(zoos, tmp_path):
    report = run(jobs_for(zoos, ["fake-one-zoo"], seeds=(0,)), tmp_path)
    assert FITS == [("toy-d1-ctc", 0)]  # the other source zoo was never fitted
    rows = read_cells(tmp_path)
    declined = rows[rows["source"] == "toy-d2-ctc"]
    assert len(report.not_applicable) == len(declined) == 3  # standard + 2 cross_dataset cells
    assert set(declined["status"]) == {"not_applicable"}
    assert (declined["error"] == "not applicable: cannot train on toy-d2-ctc").all()
    assert set(rows[rows["source"] == "toy-d1-ctc"]["status"]) == {"ok"}


def test_a_failing_method_is_recorded_and_retried_without_stopping_others(zoos, tmp_path):
    jobs = jobs_for(zoos, ["fake-broken", "fake-mean"], seeds=(0,))
    report = run(jobs, tmp_path)
    assert len(report.errors) == 6 and len(report.computed) == 6
    rows = read_cells(tmp_path)
    broken = rows[rows["method"] == "fake-broken"]
    assert set(broken["status"]) == {"error"}
    assert broken["error"].str.contains("RuntimeError: diverged on purpose").all()
    retry = run(jobs, tmp_path)
    assert len(retry.skipped) == 6 and len(retry.errors) == 6


def test_unknown_methods_fail_before_any_work(zoos, tmp_path):
    jobs = jobs_for(zoos, ["fake-mean", "fake-maen"])
    with pytest.raises(ZooBenchError, match="did you mean 'fake-mean'"):
        run(jobs, tmp_path)
    assert not (tmp_path / "cells").exists()


def test_budget_tables_split_into_limits_and_hyperparameters():
    predictor, budget = make_predictor("fake-mean", {"max_epochs": 4, "max_seconds": 9, "scale": 3})
    assert (budget.max_epochs, budget.max_seconds) == (4, 9)
    assert predictor.hparams() == {"scale": 3, "sleep": 0.0}


def test_the_closing_summary_expects_exactly_the_planned_cells(zoos):
    exp = expected_cells(jobs_for(zoos), suite="toy")
    assert exp.tasks == ("standard", "cross_dataset") and exp.seeds == (0, 1)
    assert exp.n_cells("cross_dataset") == 8 and exp.n_cells("standard") == 4


def test_git_commit_is_unknown_outside_its_own_checkout(tmp_path, monkeypatch):
    assert len(provenance.git_commit()) == 40
    monkeypatch.setattr(provenance, "PACKAGE_DIR", tmp_path)
    assert provenance.git_commit() == "unknown" and provenance.git_dirty() is None


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import test_runner
from test_runner import FAST
from zoo_bench.store import Zoo
from zoo_bench.runner import plan_jobs, run_jobs
zoos = {{p.name: Zoo.open(p) for p in map(Path, {zoo_paths!r})}}
jobs = plan_jobs(zoos, ["fake-mean"], ["standard", "cross_dataset"], (0, 1), "test_accuracy")
run_jobs(jobs, Path({results!r}), device="cpu", progress=False, evaluator=FAST,
         budgets={{"fake-mean": {{"sleep": 0.4}}}})
"""


def test_a_killed_run_resumes_with_only_the_missing_cells(zoos, tmp_path):
    results = tmp_path / "results"
    script = CHILD.format(tests=str(HERE), zoo_paths=[str(z.path) for z in zoos.values()],
                          results=str(results))
    child = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + HANG_SECONDS
    while not list((results / "cells").rglob("*.parquet")):
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, f"no cell appeared in {HANG_SECONDS} s: hung?"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=HANG_SECONDS)

    stored = read_cells(results)
    assert 1 <= len(stored) < 12, "the kill came after the first fit group, before the last"
    first_run = set(stored["cell_key"])
    assert stored["run_id"].nunique() == 1

    jobs = jobs_for(zoos)
    report = run(jobs, results, budgets={"fake-mean": {"sleep": 0.4}})  # the child's budget
    assert {k.digest for k in report.skipped} == first_run
    assert {k.digest for k in report.computed} == {j.key.digest for j in jobs} - first_run
    rows = read_cells(results)
    assert len(rows) == 12 and rows["cell_key"].is_unique and set(rows["status"]) == {"ok"}
    assert rows["run_id"].nunique() == 2
    assert set(read_predictions(results)["cell_key"]) == set(rows["cell_key"])


# --- content-keyed resume, variants, training outcome, applicability after fit, plain logs ---


def test_resume_recomputes_cells_of_other_zoos_and_keeps_identical_ones(zoos, make_zoo, tmp_path):
    """A results folder made on other zoos (same names, other bytes) is recomputed, never taken
    as done; on the same zoos every stored cell is kept."""
    results = tmp_path / "results"
    other = {n: make_zoo(runs=15, seed=10 + i, name=f"other/{n}", dataset=d)
             for i, (n, d) in enumerate([("toy-d1-ctc", "d1"), ("toy-d2-ctc", "d2")])}
    for name, zoo in other.items():  # the same zoo names, other weights
        assert zoo.manifest_sha256 != zoos[name].manifest_sha256
    run(jobs_for(other), results)
    FITS.clear()

    report = run(jobs_for(zoos), results)
    assert len(report.stale) == 12 and len(report.computed) == 12 and not report.skipped
    rows = read_cells(results)
    assert set(rows["source_sha256"]) == {z.manifest_sha256 for z in zoos.values()}

    again = run(jobs_for(zoos), results)
    assert (len(again.skipped), len(again.stale), len(again.computed)) == (12, 0, 0)


def test_resume_recomputes_after_a_hyperparameter_or_code_version_change(zoos, tmp_path):
    jobs, results = jobs_for(zoos, seeds=(0,)), tmp_path / "results"
    run(jobs, results)
    changed = run(jobs, results, budgets={"fake-mean": {"scale": 3.0}})
    assert len(changed.stale) == 6 and len(changed.computed) == 6
    kept = run(jobs, results, budgets={"fake-mean": {"scale": 3.0}})
    assert len(kept.skipped) == 6
    rows = read_cells(results).to_dict("records")  # what the leaderboard checks rows against
    assert {config_mismatch(r, method_config("fake-mean", {"scale": 3.0})) for r in rows} == {""}
    assert {config_mismatch(r, method_config("fake-mean", {})) for r in rows} == {
        "hyperparameters changed"}
    MeanWeight.version = "2"
    try:
        bumped = run(jobs, results, budgets={"fake-mean": {"scale": 3.0}})
        assert len(bumped.stale) == 6
        assert set(read_cells(results)["method_version"]) == {"2"}
    finally:
        del MeanWeight.version


def test_a_variant_never_overwrites_the_default_configuration(zoos, tmp_path):
    results = tmp_path / "results"
    default = jobs_for(zoos, seeds=(0,))
    run(default, results)
    before = {p: p.read_bytes() for p in (results / "cells").rglob("*.parquet")}
    variant = plan_jobs(zoos, ["fake-mean"], ["standard", "cross_dataset"], (0,),
                        "test_accuracy", overrides={"fake-mean": {"scale": 2.0}})
    report = run(variant, results)
    assert len(report.computed) == 6 and not report.stale and not report.skipped
    assert {p: p.read_bytes() for p in before} == before  # the default's files untouched
    rows = read_cells(results)
    assert len(rows) == 12
    var = rows[rows["variant"] != ""]
    assert set(var["variant"]) == {"scale=2.0"} and len(var) == 6
    assert json.loads(var["overrides"].iloc[0]) == {"scale": 2.0}
    assert json.loads(var["hparams"].iloc[0])["scale"] == 2.0
    assert set(rows[rows["variant"] == ""]["overrides"].isna()) == {True}
    assert set(rows["schema_version"]) == {2} and set(rows["task_version"]) == {1}
    assert expected_cells(variant).methods == ("fake-mean[scale=2.0]",)


def test_rows_record_how_training_ended(zoos, tmp_path):
    from zoo_bench.training import Batch, TorchPredictor

    @register_predictor("fake-torch")
    class Tiny(TorchPredictor):
        defaults = {**TorchPredictor.defaults, "max_epochs": 3, "patience": 50, "batch_size": 4}

        def build_model(self, train):
            return torch.nn.Linear(1, 1)

        def forward(self, batch: Batch):
            w = torch.stack([p.flatten(1).mean(1) for p, _ in batch.params()[:1]], 1)
            return self.model(w).squeeze(-1)

    zoo = {"toy-d1-ctc": zoos["toy-d1-ctc"]}
    jobs = plan_jobs(zoo, ["fake-torch"], ["standard"], (0,), "test_accuracy")
    run(jobs, tmp_path)
    row = read_cells(tmp_path).iloc[0]
    n_train = row.n_train
    steps_per_epoch = -(-n_train // 4)
    assert (row.epochs_run, row.stop_reason) == (3, "max_epochs")
    assert row.steps_run == 3 * steps_per_epoch
    assert 1 <= row.best_epoch <= 3 and row.best_step == row.best_epoch * steps_per_epoch


@register_predictor("fake-fitted-picky")
class FittedPicky(MeanWeight):
    """Fits on anything, but once fitted declines every target architecture."""

    def can_predict(self, arch):
        return False


def test_can_predict_after_the_fit_makes_cells_not_applicable(zoos, tmp_path):
    report = run(jobs_for(zoos, ["fake-fitted-picky"], seeds=(0,)), tmp_path)
    assert len(report.not_applicable) == 6 and len(FITS) == 2  # fitted, then declined
    rows = read_cells(tmp_path)
    assert set(rows["status"]) == {"not_applicable"}
    for target, why in zip(rows["target"], rows["error"], strict=True):  # names the zoo
        assert why.startswith("not applicable: the fitted model's can_predict is False")
        assert why.endswith(f"of zoo {target!r}")


@register_predictor("fake-16-units")
class SixteenUnits(MeanWeight):
    """Trains on and reads only ctc nets of 16 hidden channels."""

    def supports(self, arch):
        return arch.layers[0].weight_shape[0] == 16


def test_a_group_whose_targets_are_all_unsupported_is_not_fitted(make_zoo, tmp_path):
    zoos = {"toy-d1-ctc": make_zoo(runs=15, name="toy-d1-ctc", dataset="d1"),
            "toy-d2-ctc": make_zoo(runs=15, seed=1, name="toy-d2-ctc", dataset="d2", units=8)}
    FITS.clear()
    jobs = plan_jobs(zoos, ["fake-16-units"], ["cross_dataset"], (0,), "test_accuracy")
    transfer = [j for j in jobs if (j.cell.source, j.cell.target) == ("toy-d1-ctc", "toy-d2-ctc")]
    run(transfer, tmp_path / "transfer")
    assert FITS == []  # the only target is declined before the fit: nothing to fit for
    (why,) = read_cells(tmp_path / "transfer")["error"]
    assert why == ("not applicable: supports is False for architecture 'ctc' of zoo "
                   "'toy-d2-ctc'")

    run([j for j in jobs if j.cell.source == "toy-d1-ctc"], tmp_path / "both")
    assert FITS == [("toy-d1-ctc", 0)]  # one readable target: fitted, the other declined after
    rows = read_cells(tmp_path / "both").set_index("target")
    assert rows.loc["toy-d1-ctc", "status"] == "ok"
    assert rows.loc["toy-d2-ctc", "error"].startswith(
        "not applicable: the fitted model's can_predict is False")


def test_progress_in_a_log_is_plain_lines(zoos, tmp_path):
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    run(jobs_for(zoos, seeds=(0,)), tmp_path, progress=True, console=console, log_every=0.0)
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("[progress] cells: ") for line in lines), lines
    assert any(line.startswith("[progress] cells: 6/6 (100%)") for line in lines)
    assert not any(ch in out.getvalue() for ch in "\u2501\u2578\u2026\r\x1b")
