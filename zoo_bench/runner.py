"""Running a benchmark: every method on every task cell and seed, stored cell by cell.

A job is one method on one task cell. For each method the jobs are grouped by the cell's
`fit_key` (same source zoo, seed, train/val split and property): the predictor is fitted once
per group, then predicts each target's test split, and each cell is scored by the `Evaluator`
and written atomically with its predictions (`zoo_bench.results`). Cells whose architectures the
method does not support are stored as `not_applicable`; a cell whose fit or prediction raises
is stored as `error` (with the message) and the run goes on.

Overwrite modes: `only-missing` skips cells stored as ok / not applicable (a killed run resumes
where it stopped; a group with nothing left is not fitted); `never` refuses to start if any
planned cell is stored; `always` recomputes everything.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from zoo_bench.errors import ZooBenchError
from zoo_bench.evaluator import Evaluator
from zoo_bench.leaderboard import Expected
from zoo_bench.predictor import Budget, FitContext, Predictor, get_predictor
from zoo_bench.provenance import RunProvenance, now, peak_cuda_mb, peak_rss_mb, reset_peak_cuda
from zoo_bench.results import (
    STATUS_ERROR,
    STATUS_NOT_APPLICABLE,
    STATUS_OK,
    CellKey,
    cell_status,
    hparams_json,
    new_row,
    write_cell,
)
from zoo_bench.store import Zoo
from zoo_bench.suite import Suite, ensure_zoos
from zoo_bench.tasks import Cell, get_task
from zoo_bench.training import resolve_device

OVERWRITE_MODES = ("only-missing", "never", "always")
BUDGET_KEYS = ("max_epochs", "max_seconds")
DONE = (STATUS_OK, STATUS_NOT_APPLICABLE)


@dataclass(frozen=True)
class Job:
    """One method on one task cell."""

    method: str
    cell: Cell

    @property
    def key(self) -> CellKey:
        c = self.cell
        return CellKey(self.method, c.task, c.source, c.target, c.seed, c.property)

    @property
    def fit_key(self) -> str:
        """16 hex digits naming the fit this cell shares (method + the cell's fit key)."""
        text = json.dumps([self.method, *self.cell.fit_key])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RunReport:
    """What a run planned, skipped, computed, found not applicable, and where it failed."""

    results: Path
    planned: list[CellKey]
    skipped: list[CellKey] = field(default_factory=list)
    computed: list[CellKey] = field(default_factory=list)
    not_applicable: list[CellKey] = field(default_factory=list)
    errors: dict[CellKey, str] = field(default_factory=dict)


def plan_jobs(
    zoos: Mapping[str, Zoo],
    methods: Sequence[str],
    tasks: Sequence[str],
    seeds: Sequence[int],
    property: str,
    epochs: str = "final",
    options: Mapping[str, Any] | None = None,
    split_root: Path | None = None,
) -> list[Job]:
    """Every (method, cell) of the tasks on these zoos for these seeds (splits made as needed)."""
    cells = [
        cell
        for task in tasks
        for seed in seeds
        for cell in get_task(task).cells(zoos, seed, property, epochs, split_root, options)
    ]
    return [Job(m, c) for m in methods for c in cells]


def make_predictor(method: str, budget: Mapping[str, Any] | None) -> tuple[Predictor, Budget]:
    """The method's predictor with the budget table's extra hyperparameters, and its Budget."""
    budget = dict(budget or {})
    limits = {k: budget.pop(k) for k in BUDGET_KEYS if k in budget}
    return get_predictor(method)(**budget), Budget(**limits)


def _todo(jobs: Sequence[Job], results: Path, overwrite: str, report: RunReport) -> list[Job]:
    if overwrite not in OVERWRITE_MODES:
        raise ZooBenchError(f"overwrite must be one of {OVERWRITE_MODES}, got {overwrite!r}")
    if overwrite == "always":
        return list(jobs)
    status = {j.key: cell_status(results, j.key) for j in jobs}
    if overwrite == "never":
        stored = [k for k, s in status.items() if s is not None]
        if stored:
            k = stored[0]
            raise ZooBenchError(
                f"{len(stored)} of {len(jobs)} planned cells are already stored in {results} "
                f"(e.g. {k.method} {k.task} {k.source} -> {k.target} seed {k.seed}); "
                "use --overwrite only-missing to finish the rest or --overwrite always to redo them"
            )
        return list(jobs)
    report.skipped = [j.key for j in jobs if status[j.key] in DONE]
    return [j for j in jobs if status[j.key] not in DONE]


def _groups(jobs: Iterable[Job]) -> list[list[Job]]:
    groups: dict[str, list[Job]] = {}
    for j in jobs:
        groups.setdefault(j.fit_key, []).append(j)
    return list(groups.values())


def _supports(predictor: Predictor, *zoos: Zoo) -> bool:
    return all(predictor.supports(z.architectures[a]) for z in zoos for a in z.arch_groups())


def _error_text(e: BaseException) -> str:
    tail = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
    return f"{type(e).__name__}: {e}\n{tail}"


class _Runner:
    """State shared by the cells of one run: where to write, provenance, budgets, display."""

    def __init__(self, results: Path, device: str, budgets: Mapping[str, Mapping[str, Any]],
                 suite: str | None, evaluator: Evaluator, progress: bool, report: RunReport,
                 advance: Callable[[Job, str], None]):
        FitContext(device=device)  # a malformed device string fails here, before any fit
        self.results = Path(results)
        self.device = device
        self.budgets = budgets
        self.suite = suite
        self.evaluator = evaluator
        self.progress = progress
        self.report = report
        self.advance = advance
        self.torch_device = str(resolve_device(device))
        self.prov = RunProvenance.collect(self.torch_device)

    def row(self, job: Job, status: str, **fields: Any) -> dict[str, Any]:
        c = job.cell
        return new_row(
            job.key, status=status, fit_key=job.fit_key, suite=self.suite,
            n_train=len(c.train), n_val=len(c.val), n_test=len(c.test),
            split_sha256_train=c.train_sha256, split_sha256_val=c.val_sha256,
            split_sha256_test=c.test_sha256,
            source_sha256=c.source_split.zoo_manifest_sha256,
            target_sha256=c.target_split.zoo_manifest_sha256,
            peak_rss_mb=peak_rss_mb(), peak_cuda_mb=peak_cuda_mb(self.torch_device),
            timestamp=now(), **self.prov.as_dict(), **fields,
        )

    def run_group(self, group: list[Job]) -> None:
        """Fit once for the group's shared training data, then score and store each cell."""
        first = group[0]
        budget_table = self.budgets.get(first.method, {})
        common: dict[str, Any] = {"budget": json.dumps(dict(budget_table), sort_keys=True)}
        try:
            predictor, budget = make_predictor(first.method, budget_table)
            common["hparams"] = hparams_json(predictor.hparams())
            if not _supports(predictor, first.cell.train, first.cell.val):
                for job in group:
                    self.finish(job, STATUS_NOT_APPLICABLE, common)
                return
            reset_peak_cuda(self.torch_device)
            ctx = FitContext(seed=first.cell.seed, device=self.device, budget=budget,
                             progress=self.progress)
            start = time.perf_counter()
            predictor.fit(first.cell.train, first.cell.val, first.cell.property, ctx)
            common.update(fit_seconds=time.perf_counter() - start, fit_shared_by=len(group),
                          n_parameters=predictor.n_parameters())
        except Exception as e:  # a failing method must not stop the other methods' cells
            for job in group:
                self.finish(job, STATUS_ERROR, common, error=_error_text(e))
            return
        for job in group:
            self.score(predictor, job, common)

    def score(self, predictor: Predictor, job: Job, common: dict[str, Any]) -> None:
        """Predict the cell's test networks with the fitted predictor, evaluate, store."""
        test = job.cell.test
        if not all(predictor.can_predict(test.architectures[a]) for a in test.arch_groups()):
            self.finish(job, STATUS_NOT_APPLICABLE, common)
            return
        try:
            start = time.perf_counter()
            y_pred = predictor.predict(test)
            seconds = time.perf_counter() - start
            y_true = test.targets(job.cell.property)
            scores = self.evaluator.eval(y_true, y_pred)
        except Exception as e:  # recorded as an error cell; retried by the next only-missing run
            self.finish(job, STATUS_ERROR, common, error=_error_text(e))
            return
        preds = pd.DataFrame(
            {"network_id": test.table["network_id"].to_numpy(), "y_true": y_true,
             "y_pred": np.asarray(y_pred, dtype=np.float64)}
        )
        fields = {**common, **scores, "predict_seconds": seconds}
        self.finish(job, STATUS_OK, fields, preds=preds)

    def finish(self, job: Job, status: str, fields: dict[str, Any], error: str | None = None,
               preds: pd.DataFrame | None = None) -> None:
        """Write the cell's row (and predictions) and count it in the report."""
        write_cell(self.results, self.row(job, status, error=error, **fields), preds)
        if status == STATUS_OK:
            self.report.computed.append(job.key)
        elif status == STATUS_NOT_APPLICABLE:
            self.report.not_applicable.append(job.key)
        else:
            self.report.errors[job.key] = error or ""
        self.advance(job, status)


def run_jobs(
    jobs: Sequence[Job],
    results: Path,
    *,
    device: str = "auto",
    overwrite: str = "only-missing",
    budgets: Mapping[str, Mapping[str, Any]] | None = None,
    suite: str | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> RunReport:
    """Compute and store the jobs' cells (see the module docstring); returns what happened."""
    results = Path(results)
    report = RunReport(results, [j.key for j in jobs])
    for method in dict.fromkeys(j.method for j in jobs):
        get_predictor(method)
    todo = _todo(jobs, results, overwrite, report)
    bar = Progress(
        TextColumn("[bold]cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.description}"),
        console=console, disable=not progress,
    )
    with bar:
        task = bar.add_task("", total=len(todo))

        def advance(job: Job, status: str) -> None:
            bar.update(task, advance=1, description=f"{_label(job)}: {status}")

        runner = _Runner(results, device, budgets or {}, suite, evaluator or Evaluator(),
                         progress, report, advance)
        for group in _groups(todo):
            bar.update(task, description=f"{_label(group[0])}: fitting ({len(group)} cells)")
            runner.run_group(group)
    return report


def expected_cells(jobs: Sequence[Job], suite: str | None = None) -> Expected:
    """What the jobs cover, as the leaderboard's `Expected` (for a run's closing summary)."""
    keys = [j.key for j in jobs]
    pairs: dict[str, set[tuple[str, str]]] = {}
    for k in keys:
        pairs.setdefault(k.task, set()).add((k.source, k.target))
    return Expected(
        property=keys[0].property if keys else "test_accuracy",
        methods=tuple(dict.fromkeys(k.method for k in keys)),
        tasks=tuple(pairs),
        seeds=tuple(sorted({k.seed for k in keys})),
        pairs={t: frozenset(p) for t, p in pairs.items()},
        suite=suite,
    )


def _label(job: Job) -> str:
    c = job.cell
    return f"{job.method} {c.task} {c.source} -> {c.target} seed {c.seed}"


def suite_jobs(
    suite: Suite,
    methods: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
) -> list[Job]:
    """The suite's jobs (or a selection of methods, tasks, seeds); its zoos are got first."""
    zoos = ensure_zoos(suite, progress=progress)
    return plan_jobs(
        zoos, methods or suite.methods, tasks or suite.tasks, seeds or suite.seeds,
        suite.property, suite.epochs, suite.task_options(),
    )
