"""Running a benchmark: every method on every task cell and seed, stored cell by cell.

A job is one method (with its variant: the overrides of `--set`, if any) on one task cell. For
each method the jobs are grouped by the cell's `fit_key` (same source zoo, seed, train/val split
and property): the predictor is fitted once per group, then predicts each target's test split,
and each cell is scored by the `Evaluator` and written atomically with its predictions
(`zoo_bench.results`). Cells whose architectures the method does not support (`supports` before
the fit, `can_predict` after it) are stored as `not_applicable` (the reason in `error`), and a
group none of whose targets the method supports is not fitted at all; a cell whose fit or
prediction raises is stored as `error` (with the message) and the run goes on.

Overwrite modes: `only-missing` skips cells stored as ok / not applicable *and still current*
(a killed run resumes where it stopped; a group with nothing left is not fitted). A stored cell
is current when its zoo and split hashes, the method's hyperparameters, budget and code
`version`, and the task's `version` all equal the ones this run would use; a stale cell is
recomputed, never kept. `never` refuses to start if any planned cell is stored; `always`
recomputes everything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from zoo_bench.errors import ZooBenchError
from zoo_bench.evaluator import Evaluator
from zoo_bench.predictor import Budget, FitContext, Predictor, available_predictors, get_predictor
from zoo_bench.progress import EtaColumn, progress_bar
from zoo_bench.provenance import RunProvenance, now, peak_cuda_mb, peak_rss_mb, reset_peak_cuda
from zoo_bench.results import (
    STATUS_ERROR,
    STATUS_NOT_APPLICABLE,
    STATUS_OK,
    CellKey,
    MethodConfig,
    config_mismatch,
    hparams_json,
    new_row,
    stored_row,
    write_cell,
)
from zoo_bench.spec import (
    BUDGET_LIMITS,
    DEFAULT_BUDGET,
    OVERWRITE_MODES,
    RESOURCE_KEYS,
    Expected,
)
from zoo_bench.store import Zoo
from zoo_bench.suite import Suite, ensure_zoos, method_budget, variant_label
from zoo_bench.tasks import Cell, get_task
from zoo_bench.training import resolve_device

logger = logging.getLogger(__name__)
BUDGET_KEYS = BUDGET_LIMITS
DONE = (STATUS_OK, STATUS_NOT_APPLICABLE)
LOG_EVERY = 30.0  # seconds between plain progress lines when stdout is not a terminal


@dataclass(frozen=True)
class Job:
    """One method (with its overrides, canonical JSON; "" for none) on one task cell."""

    method: str
    cell: Cell
    overrides: str = ""

    @property
    def override_dict(self) -> dict[str, Any]:
        return json.loads(self.overrides) if self.overrides else {}

    @property
    def variant(self) -> str:
        """The overrides as a label, e.g. `lr=0.01` ("" for the default configuration)."""
        return variant_label(self.override_dict)

    @property
    def key(self) -> CellKey:
        c = self.cell
        return CellKey(self.method, c.task, c.source, c.target, c.seed, c.property, self.variant)

    @property
    def fit_key(self) -> str:
        """16 hex digits naming the fit this cell shares (method, variant + the cell's fit key)."""
        parts = [self.method, *self.cell.fit_key] + ([self.variant] if self.variant else [])
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


@dataclass
class RunReport:
    """What a run planned, skipped, computed, found stale, not applicable, and where it failed."""

    results: Path
    planned: list[CellKey]
    skipped: list[CellKey] = field(default_factory=list)
    stale: list[CellKey] = field(default_factory=list)
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
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Job]:
    """Every (method, cell) of the tasks on these zoos for these seeds (splits made as needed).

    `overrides` ({method: {key: value}}) makes that method's jobs a variant.
    """
    cells = [
        cell
        for task in tasks
        for seed in seeds
        for cell in get_task(task).cells(zoos, seed, property, epochs, split_root, options)
    ]
    over = {m: dict((overrides or {}).get(m, {})) for m in methods}
    text = {m: json.dumps(o, sort_keys=True) if o else "" for m, o in over.items()}
    return [Job(m, c, text[m]) for m in methods for c in cells]


def make_predictor(method: str, budget: Mapping[str, Any] | None) -> tuple[Predictor, Budget]:
    """The method's predictor with the budget table's extra hyperparameters, and its Budget
    (resource keys are the executor's, not the predictor's)."""
    budget = {k: v for k, v in (budget or {}).items() if k not in RESOURCE_KEYS}
    limits = {k: budget.pop(k) for k in BUDGET_KEYS if k in budget}
    return get_predictor(method)(**budget), Budget(**limits)


def method_version(method: str) -> str:
    """The predictor class's declared code `version` (default "1"), as recorded in rows."""
    return str(getattr(get_predictor(method), "version", "1"))


def _configs(jobs: Sequence[Job], budgets: Mapping[str, Mapping[str, Any]] | None,
             suite: Suite | None) -> dict[tuple[str, str], MethodConfig]:
    """The config of every (method, overrides) among the jobs; bad hyperparameters fail here."""
    out = {}
    for method, overrides in dict.fromkeys((j.method, j.overrides) for j in jobs):
        if budgets is not None and method in budgets:
            base = dict(budgets[method])
        elif budgets is not None and DEFAULT_BUDGET in budgets:
            base = dict(budgets[DEFAULT_BUDGET])
        else:
            base = method_budget(suite, method)
        out[(method, overrides)] = method_config(
            method, {**base, **(json.loads(overrides) if overrides else {})})
    return out


def method_config(method: str, table: Mapping[str, Any]) -> MethodConfig:
    """What the method runs with under this budget table (bad hyperparameters fail here)."""
    predictor, _ = make_predictor(method, table)
    return MethodConfig(dict(table), hparams_json(predictor.hparams()), method_version(method))


def suite_configs(suite: Suite, methods: Iterable[str]) -> dict[str, MethodConfig]:
    """Each method's configuration on the suite without overrides, for the methods installed
    (a stored row of one that is not cannot be checked, so it has no entry)."""
    usable = available_predictors()
    return {m: method_config(m, method_budget(suite, m)) for m in methods if m in usable}


def stale_reason(job: Job, row: Mapping[str, Any], config: MethodConfig) -> str:
    """Why a stored row does not hold what this job would compute now ("" when it does)."""
    c = job.cell
    now_values = {
        "source_sha256": c.source_split.zoo_manifest_sha256,
        "target_sha256": c.target_split.zoo_manifest_sha256,
        "split_sha256_train": c.train_sha256, "split_sha256_val": c.val_sha256,
        "split_sha256_test": c.test_sha256,
        "task_version": get_task(c.task).version,
    }
    stored = {**row}
    stored["task_version"] = 1 if row.get("task_version") is None else row["task_version"]
    for name, value in now_values.items():
        if stored.get(name) != value:
            return f"{name} {stored.get(name)!r} != {value!r}"
    return config_mismatch(row, config)


def _todo(jobs: Sequence[Job], results: Path, overwrite: str, report: RunReport,
          configs: Mapping[tuple[str, str], MethodConfig]) -> list[Job]:
    if overwrite not in OVERWRITE_MODES:
        raise ZooBenchError(f"overwrite must be one of {OVERWRITE_MODES}, got {overwrite!r}")
    if overwrite == "always":
        return list(jobs)
    rows = {j.key: stored_row(results, j.key) for j in jobs}
    if overwrite == "never":
        stored = [k for k, r in rows.items() if r is not None]
        if stored:
            k = stored[0]
            raise ZooBenchError(
                f"{len(stored)} of {len(jobs)} planned cells are already stored in {results} "
                f"(e.g. {k.method} {k.task} {k.source} -> {k.target} seed {k.seed}); "
                "use --overwrite only-missing to finish the rest or --overwrite always to redo them"
            )
        return list(jobs)
    todo = []
    for j in jobs:
        row = rows[j.key]
        if row is None or row["status"] not in DONE:
            todo.append(j)
        elif stale_reason(j, row, configs[(j.method, j.overrides)]):
            report.stale.append(j.key)
            todo.append(j)
        else:
            report.skipped.append(j.key)
    return todo


def _groups(jobs: Iterable[Job]) -> list[list[Job]]:
    groups: dict[str, list[Job]] = {}
    for j in jobs:
        groups.setdefault(j.fit_key, []).append(j)
    return list(groups.values())


def _inapplicable(predictor: Predictor, *zoos: Zoo) -> str | None:
    """Why the predictor cannot take these zoos (stored in the cell's `error` field), or None:
    `can_predict(arch)` once fitted, else `supports(arch)` (the applicability contract)."""
    check = predictor.can_predict if predictor.fitted else predictor.supports
    for z in zoos:
        for a in z.arch_groups():
            if not check(z.architectures[a]):
                how = "the fitted model's can_predict" if predictor.fitted else "supports"
                return f"not applicable: {how} is False for architecture {a!r} of zoo {z.name!r}"
    return None


def _error_text(e: BaseException) -> str:
    tail = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
    return f"{type(e).__name__}: {e}\n{tail}"


def training_outcome(predictor: Predictor) -> dict[str, Any]:
    """Epochs and steps run, best epoch and step, stop reason: from `train_result` if any."""
    result = getattr(predictor, "train_result", None)
    if result is None:
        return {}

    def number(name: str) -> int | None:
        value = getattr(result, name, None)
        return int(value) if value is not None else None

    return {
        "epochs_run": number("epochs"), "best_epoch": number("best_epoch"),
        "steps_run": number("steps") or None, "best_step": number("best_step") or None,
        "stop_reason": getattr(result, "stopped_by", None),
    }


def fit_threads(budget: Mapping[str, Any], default: int | None = None) -> int | None:
    """Threads a fit runs on: one per CPU it holds (`num_cpus`), else `default` (None: leave
    the process's setting). The same rule on every executor, so results can match exactly."""
    cpus = budget.get("num_cpus")
    return int(cpus) if cpus is not None else default


@contextmanager
def pinned_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `n` inside the block (unchanged when None)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Runner:
    """State shared by the cells of one run: where to write, provenance, configs, display."""

    def __init__(self, results: Path, device: str,
                 configs: Mapping[tuple[str, str], MethodConfig], suite: str | None,
                 evaluator: Evaluator, progress: bool, report: RunReport,
                 advance: Callable[[Job, str], None]):
        FitContext(device=device)  # a malformed device string fails here, before any fit
        self.results = Path(results)
        self.device = device
        self.configs = configs
        self.suite = suite
        self.evaluator = evaluator
        self.progress = progress
        self.report = report
        self.advance = advance
        self.torch_device = str(resolve_device(device))
        self.prov = RunProvenance.collect(self.torch_device)
        self.default_threads: int | None = None  # threads of a fit without `num_cpus`

    def row(self, job: Job, status: str, **fields: Any) -> dict[str, Any]:
        c = job.cell
        return new_row(
            job.key, status=status, fit_key=job.fit_key, suite=self.suite,
            n_train=len(c.train), n_val=len(c.val), n_test=len(c.test),
            split_sha256_train=c.train_sha256, split_sha256_val=c.val_sha256,
            split_sha256_test=c.test_sha256,
            source_sha256=c.source_split.zoo_manifest_sha256,
            target_sha256=c.target_split.zoo_manifest_sha256,
            task_version=get_task(c.task).version,
            method_version=self.configs[(job.method, job.overrides)].version,
            overrides=job.overrides or None,
            peak_rss_mb=peak_rss_mb(), peak_cuda_mb=peak_cuda_mb(self.torch_device),
            timestamp=now(), **self.prov.as_dict(), **fields,
        )

    def run_group(self, group: list[Job]) -> None:
        """Fit once for the group's shared training data, then score and store each cell."""
        first = group[0]
        config = self.configs[(first.method, first.overrides)]
        common: dict[str, Any] = {"budget": json.dumps(config.budget, sort_keys=True)}
        try:
            predictor, budget = make_predictor(first.method, config.budget)
            common["hparams"] = hparams_json(predictor.hparams())
            train, val = first.cell.train, first.cell.val
            problem = predictor.fit_problem(train, val)
            reason = _inapplicable(predictor, train, val) or (
                f"not applicable: {problem}" if problem else None)
            # a method that cannot consume any of the group's targets (supports) is not fitted
            reasons = ([reason] * len(group) if reason
                       else [_inapplicable(predictor, j.cell.test) for j in group])
            if all(reasons):
                for job, why in zip(group, reasons, strict=True):
                    self.finish(job, STATUS_NOT_APPLICABLE, common, error=why)
                return
            reset_peak_cuda(self.torch_device)
            ctx = FitContext(seed=first.cell.seed, device=self.device, budget=budget,
                             progress=self.progress)
            start = time.perf_counter()
            with pinned_threads(fit_threads(config.budget, self.default_threads)):
                predictor.fit(train, val, first.cell.property, ctx)
            common.update(fit_seconds=time.perf_counter() - start, fit_shared_by=len(group),
                          n_parameters=predictor.n_parameters(), **training_outcome(predictor))
            logger.debug("fitted %s in %.1f s (%d cells)", _label(first),
                         common["fit_seconds"], len(group))
        except Exception as e:  # a failing method must not stop the other methods' cells
            logger.warning("fit of %s failed: %s: %s", _label(first), type(e).__name__, e)
            for job in group:
                self.finish(job, STATUS_ERROR, common, error=_error_text(e))
            return
        with pinned_threads(fit_threads(config.budget, self.default_threads)):
            for job in group:
                self.score(predictor, job, common)

    def score(self, predictor: Predictor, job: Job, common: dict[str, Any]) -> None:
        """Predict the cell's test networks with the fitted predictor, evaluate, store."""
        test = job.cell.test
        try:
            reason = _inapplicable(predictor, test)
        except Exception as e:  # a broken can_predict is the method's error, not the run's
            self.finish(job, STATUS_ERROR, common, error=_error_text(e))
            return
        if reason:
            self.finish(job, STATUS_NOT_APPLICABLE, common, error=reason)
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
        self.store(job, status, self.row(job, status, error=error, **fields), preds, error)

    def store(self, job: Job, status: str, row: dict[str, Any], preds: pd.DataFrame | None,
              error: str | None = None) -> None:
        """Write a finished cell atomically (only the driver does) and count it."""
        write_cell(self.results, row, preds)
        if status == STATUS_OK:
            self.report.computed.append(job.key)
        elif status == STATUS_NOT_APPLICABLE:
            self.report.not_applicable.append(job.key)
        else:
            self.report.errors[job.key] = error or ""
        self.advance(job, status)


class Executor(Protocol):
    """Runs a run's fit groups somewhere and hands every finished cell to `runner.store` (on
    the driver, which alone writes results); `status(text)` shows what is going on."""

    def run(self, runner: _Runner, groups: list[list[Job]],
            status: Callable[[str], None]) -> None: ...


def run_jobs(
    jobs: Sequence[Job],
    results: Path,
    *,
    device: str = "auto",
    overwrite: str = "only-missing",
    budgets: Mapping[str, Mapping[str, Any]] | None = None,
    suite: str | Suite | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = True,
    console: Console | None = None,
    log_every: float = LOG_EVERY,
    executor: Executor | None = None,
    cost: Callable[[Job], float] | None = None,
) -> RunReport:
    """Compute and store the jobs' cells (see the module docstring); returns what happened.

    Budgets: `budgets[method]` when given, else the suite's table for the method (or its
    `[budgets.default]`); each job's overrides go on top. Progress: a live bar on a terminal,
    plain periodic lines otherwise (a log file). `executor` runs the fit groups elsewhere (e.g.
    `zoo_bench.ray_executor.RayExecutor`); by default they are fitted one after another here.
    `cost(job)`: the job's estimated seconds (e.g. `zoo_bench.plan.Plan.cell_seconds`), so the
    time left weighs cells by cost instead of counting them.
    """
    results = Path(results)
    report = RunReport(results, [j.key for j in jobs])
    suite_obj = suite if isinstance(suite, Suite) else None
    suite_name = suite.name if isinstance(suite, Suite) else suite
    configs = _configs(jobs, budgets, suite_obj)
    todo = _todo(jobs, results, overwrite, report, configs)
    console = console or Console()
    live = progress and console.is_terminal and not console.is_dumb_terminal
    bar = progress_bar(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), EtaColumn(),
        TextColumn("{task.fields[cell]}"), console=console, every_s=log_every,
    ) if progress else Progress(disable=True)
    weight = cost or (lambda job: 1.0)
    work = {"total": sum(weight(j) for j in todo) or 1.0, "done": 0.0}
    with bar:
        task = bar.add_task("cells", total=len(todo), cell="")

        def advance(job: Job, status: str) -> None:
            work["done"] += weight(job)
            bar.update(task, advance=1, cell=f"{_label(job)}: {status}",
                       work=min(work["done"] / work["total"], 1.0))

        runner = _Runner(results, device, configs, suite_name, evaluator or Evaluator(),
                         live, report, advance)
        if executor is not None:
            executor.run(runner, _groups(todo), lambda text: bar.update(task, cell=text))
            return report
        for group in _groups(todo):
            bar.update(task, cell=f"{_label(group[0])}: fitting ({len(group)} cells)")
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
        methods=tuple(dict.fromkeys(k.label for k in keys)),
        tasks=tuple(pairs),
        seeds=tuple(sorted({k.seed for k in keys})),
        pairs={t: frozenset(p) for t, p in pairs.items()},
        suite=suite,
    )


def _label(job: Job) -> str:
    c = job.cell
    return f"{job.key.label} {c.task} {c.source} -> {c.target} seed {c.seed}"


def suite_jobs(
    suite: Suite,
    methods: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Job]:
    """The suite's jobs (or a selection of methods, tasks, seeds); its zoos are got first."""
    zoos = ensure_zoos(suite, progress=progress)
    return plan_jobs(
        zoos, methods or suite.methods, tasks or suite.tasks, seeds or suite.seeds,
        suite.property, suite.epochs, suite.task_options(), overrides=overrides,
    )
