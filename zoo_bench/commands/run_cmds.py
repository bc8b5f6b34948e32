"""`zoo-bench run` (score methods on a suite's cells) and `zoo-bench leaderboard` (rank them)."""

from __future__ import annotations

import dataclasses
import re
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from zoo_bench.errors import ZooBenchError
from zoo_bench.spec import OVERWRITE_MODES

RESULTS_ROOT = Path("results")
RESULTS_OPTION = click.option(
    "--results", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Results folder (cells/ and predictions/ tables; default: results/<suite>).",
)
SUITE_FILE_OPTION = click.option(
    "--suite-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
    help="Suite file to read (default: ./benchmark.toml, else the one beside the package); "
    "its suites may `extends` the repository's.",
)
_SEED_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from `0-4`, `0,1` or a mix such as `0-2,7` (order kept, repeats dropped)."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        m = _SEED_PART.match(part)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise click.BadParameter(f"{part!r} is not a seed or a range like 0-4",
                                     param_hint="--seeds")
        last = int(m[2]) if m[2] is not None else int(m[1])
        seeds += range(int(m[1]), last + 1)
    return tuple(dict.fromkeys(seeds))


def parse_names(values: Sequence[str], everything: Sequence[str]) -> tuple[str, ...]:
    """Repeated and/or comma separated names; `all` (or nothing) stands for `everything`."""
    names: list[str] = []
    for value in values or ("all",):
        for name in filter(None, (v.strip() for v in value.split(","))):
            names += everything if name == "all" else [name]
    return tuple(dict.fromkeys(names))


def results_folder(results: Path | None, suite: str) -> Path:
    """The results folder: the one given, else results/<suite>."""
    return results if results is not None else RESULTS_ROOT / suite


@click.command()
@click.option("--method", "-m", "methods", multiple=True, metavar="NAME",
              help="Method(s) to run, repeatable or comma separated: any registered method; "
              "`all` (default): the suite's.")
@click.option("--task", "-t", "tasks", multiple=True, metavar="NAME",
              help="Task(s) to run, repeatable or comma separated; `all` (default): the suite's.")
@click.option("--suite", "suite_name", default=None,
              help="Suite: zoos, tasks, methods, seeds, budgets (default: `default`, or the "
              "only suite of --suite-file).")
@SUITE_FILE_OPTION
@click.option("--set", "sets", multiple=True, metavar="[METHOD.]KEY=VALUE",
              help="Override a hyperparameter or budget key (max_epochs, max_seconds) of every "
              "chosen method, or of METHOD only; repeatable. Makes the run a variant.")
@click.option("--seeds", default=None, help="Seeds, e.g. 0-4 or 0,1 (default: the suite's).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@RESULTS_OPTION
@click.option("--overwrite", type=click.Choice(OVERWRITE_MODES), default="only-missing",
              show_default=True,
              help="only-missing: skip stored cells that are still current (resume); never: "
              "refuse if any is stored; always: recompute.")
@click.option("--bootstrap-iters", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Bootstrap resamples for each cell's Kendall tau interval.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--dry-run", "--plan", "dry_run", is_flag=True,
              help="Print the plan (zoos, fits, cells, estimated time) and stop: nothing is "
              "generated, downloaded or fitted.")
@click.option("--executor", type=click.Choice(("local", "ray")), default="local",
              show_default=True,
              help="local: fit here, one group after another; ray: each fit as a Ray task "
              "(needs pip install 'zoo-bench[ray]'; see docs/cluster.md).")
@click.option("--address", default=None, metavar="ADDR",
              help="With --executor ray: join the Ray cluster at ADDR (e.g. auto or "
              "head-node:6379) instead of starting a local Ray instance.")
@click.option("--ray-cpus", type=click.IntRange(min=1), default=None,
              help="With --executor ray and no --address: CPUs of the local Ray instance "
              "(default: all cores).")
def run(methods: tuple[str, ...], tasks: tuple[str, ...], suite_name: str | None,
        suite_file: Path | None, sets: tuple[str, ...], seeds: str | None, device: str,
        results: Path | None, overwrite: str, bootstrap_iters: int, quiet: bool, dry_run: bool,
        executor: str, address: str | None, ray_cpus: int | None) -> None:
    """Score methods on a suite: one stored row per (method, task, source, target, seed).

    It first prints the plan: the suite, the zoos to generate, the fits and cells, and an
    estimate of the time from measured costs (--dry-run stops there). Zoos the suite needs are
    generated or downloaded first. Each finished cell is written at once, so an interrupted run
    loses only the cells in flight; run the same command again to finish. A method the suite
    does not list runs with the suite's `[budgets.default]` (else its own defaults); with --set
    the run is a variant, stored beside the default configuration. A suite method whose
    optional extra is not installed is skipped, with the command that installs it.
    """
    from zoo_bench.evaluator import Evaluator
    from zoo_bench.leaderboard import build_leaderboard, rich_table
    from zoo_bench.plan import plan_run
    from zoo_bench.results import read_cells
    from zoo_bench.runner import expected_cells, run_jobs, suite_configs, suite_jobs
    from zoo_bench.suite import load_suite, parse_overrides
    from zoo_bench.tasks import get_task
    from zoo_bench.terminal import Fitted, make_console

    console = make_console()
    if executor == "local" and (address is not None or ray_cpus is not None):
        raise click.UsageError("--address and --ray-cpus need --executor ray")
    try:
        runs_on = None
        if executor == "ray" and not dry_run:
            from zoo_bench.ray_executor import RayExecutor

            runs_on = RayExecutor(address=address, num_cpus=ray_cpus)
        suite = load_suite(_default_suite(suite_name, suite_file), suite_file)
        results = results_folder(results, suite.name)
        chosen_methods = _installed(parse_names(methods, suite.methods), methods, console)
        chosen_tasks = parse_names(tasks, suite.tasks)
        for t in chosen_tasks:
            get_task(t)
        overrides = parse_overrides(sets, chosen_methods)
        chosen_seeds = parse_seeds(seeds) if seeds else suite.seeds
        for m in chosen_methods:
            _check_method(m, suite, overrides.get(m, {}))
        plan = plan_run(suite, chosen_methods, chosen_tasks, chosen_seeds, overrides, results)
        _print_plan(console, suite, suite_name is None and suite_file is None, plan)
        if dry_run:
            return
        started = _utc_now()
        jobs: list[Any] = []
        try:
            jobs = suite_jobs(suite, chosen_methods, chosen_tasks, chosen_seeds,
                              progress=not quiet, overrides=overrides)
            report = run_jobs(
                jobs, results, device=device, overwrite=overwrite, suite=suite,
                evaluator=Evaluator(n_boot=bootstrap_iters), progress=not quiet,
                console=console, executor=runs_on, cost=lambda job: plan.cell_seconds(job.method),
            )
        except KeyboardInterrupt:
            _interrupted(console, jobs, results, started)
            raise SystemExit(130) from None
        except SystemExit as e:
            if e.code == 128 + signal.SIGTERM:
                _interrupted(console, jobs, results, started)
            raise
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    rows = read_cells(results)
    summary = build_leaderboard(rows, expected_cells(jobs, suite.name),
                                current_configs=suite_configs(suite, set(rows["method"])))
    console.print(Fitted(rich_table(summary)))
    stale = f" ({len(report.stale)} of them stale: other zoos, hyperparameters or versions)" \
        if report.stale else ""
    console.print(
        f"{len(report.computed)} cells computed{stale}, {len(report.skipped)} already stored, "
        f"{len(report.not_applicable)} not applicable, {len(report.errors)} failed; "
        f"results in {results}", markup=False, highlight=False,
    )
    for key, error in report.errors.items():
        console.print(f"failed {key.label} {key.task} {key.source} -> {key.target} "
                      f"seed {key.seed}: {error.splitlines()[0]}", markup=False, highlight=False)
    if report.errors:
        raise SystemExit(1)


FIRST_TRY_SUITE = "ci"
FIRST_TRY_OVER_S = 30 * 60  # suggest the small suite when a run would take longer than this


def _print_plan(console: Any, suite: Any, defaulted: bool, plan: Any) -> None:
    """The suite (and whether it was the default), the plan with its estimate, and, for a long
    run, the small suite to try first."""
    from rich.text import Text

    from zoo_bench.plan import duration, suite_cost

    how = ", the default (no --suite given; `zoo-bench suites` lists all)" if defaulted else ""
    console.print(Text(f"Suite {suite.name}{how}", style="bold"))
    if suite.path is not None:
        console.print(f"  from {suite.path}", markup=False, highlight=False)
    for line in plan.lines():
        console.print(line, markup=False, highlight=False)
    if suite.name != FIRST_TRY_SUITE and plan.total_seconds > FIRST_TRY_OVER_S:
        try:
            from zoo_bench.suite import load_suite

            small = duration(suite_cost(load_suite(FIRST_TRY_SUITE)).total_seconds)
        except ZooBenchError:
            return
        console.print(f"For a first try, the small {FIRST_TRY_SUITE} suite takes about {small}: "
                      f"zoo-bench run --suite {FIRST_TRY_SUITE}", markup=False, highlight=False)
    console.print("Ctrl-C stops the run; the same command resumes it.", markup=False,
                  highlight=False)


def _installed(chosen: Sequence[str], typed: Sequence[str], console: Any) -> tuple[str, ...]:
    """The chosen methods less the suite's whose optional extra is not installed (said once,
    with the install command); a method named on the command line that needs one fails."""
    from zoo_bench.registry import PREDICTORS, MissingExtraError

    absent = PREDICTORS.missing_extras()
    named = {n.strip() for v in typed for n in v.split(",")} - {"all", ""}
    for m in chosen:
        if m in absent and m in named:
            raise MissingExtraError(
                f"method {m!r} {absent[m].error}: {absent[m].install}, then run again")
    skipped: dict[str, list[str]] = {}
    for m in chosen:
        if m in absent:
            skipped.setdefault(absent[m].install, []).append(m)
    for install, names in skipped.items():
        console.print(
            f"Skipping {', '.join(names)}: {'it needs' if len(names) == 1 else 'they need'} an "
            f"optional extra that is not installed, so nothing is stored for "
            f"{'it' if len(names) == 1 else 'them'}. Install it with {install} and run again "
            "to add them.", markup=False, highlight=False)
    return tuple(m for m in chosen if m not in absent)


def _utc_now() -> Any:
    import pandas as pd

    return pd.Timestamp.now(tz="UTC")


def _interrupted(console: Any, jobs: Sequence[Any], results: Path, started: Any) -> None:
    """What an interrupted run kept, and that the same command resumes it."""
    if not jobs:
        console.print("\nInterrupted while getting the zoos: generation keeps every finished "
                      "group of runs. Run the same command again to resume.", markup=False,
                      highlight=False)
        return
    from zoo_bench.results import read_cells

    planned = {j.key for j in jobs}
    try:
        rows = read_cells(results)
    except Exception:  # the message matters more than the count: say what is certain
        rows = None
    if rows is not None and not rows.empty:
        mine = rows[[_key_of(r) in planned for r in rows.itertuples()]]
        new = int((mine["timestamp"] >= started).sum())
        kept = f"{new} cells finished in this run and {len(mine)} of the {len(planned)} " \
            f"planned are stored in {results}"
    else:
        kept = f"no cell of this run was finished; {results} holds nothing of it"
    console.print(f"\nInterrupted: {kept} (each complete; the cell in flight was dropped). "
                  "Run the same command again to resume: it computes only what is missing.",
                  markup=False, highlight=False)


def _key_of(row: Any) -> Any:
    from zoo_bench.results import CellKey

    variant = row.variant if isinstance(row.variant, str) else ""
    return CellKey(row.method, row.task, row.source, row.target, int(row.seed), row.property,
                   variant)


def _default_suite(name: str | None, suite_file: Path | None) -> str | None:
    """`--suite`, else the only suite of --suite-file (None lets the spec pick it), else default."""
    if name is not None:
        return name
    return None if suite_file is not None else "default"


def _check_method(method: str, suite: Any, overrides: dict[str, Any]) -> None:
    """The method's predictor builds with its budget and overrides (before any work)."""
    from zoo_bench.runner import make_predictor
    from zoo_bench.suite import check_budget, method_budget

    budget = method_budget(suite, method, overrides)
    check_budget(method, budget, f"the budget of {method} on suite {suite.name}")
    make_predictor(method, budget)


@click.command()
@RESULTS_OPTION
@click.option("--suite", "suite_name", default=None,
              help="Suite whose cells are expected (default: the suite the results name, else "
              "the cells found in the results).")
@SUITE_FILE_OPTION
@click.option("--property", "prop", default=None,
              help="Property to rank on (default: the suite's, or the only one stored).")
@click.option("--seeds", default=None,
              help="Seeds a complete entry needs, e.g. 0 or 0-4 (default: the suite's).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for leaderboard.md and leaderboard.html (default: the results folder).")
def leaderboard(results: Path | None, suite_name: str | None, suite_file: Path | None,
                prop: str | None, seeds: str | None, out: Path | None) -> None:
    """Rank methods per task: mean +- std of Kendall's tau over seeds, from stored results.

    Per seed, a task's score is the mean over all its (source, target) cells; a method missing
    any expected cell is shown as incomplete, never averaged over what it has. Every method
    with rows is shown (plug-ins and --set variants included), with the seeds it has. Without
    --results, reads results/<suite> (results/default when no suite is named).
    """
    from rich.console import Console

    from zoo_bench.leaderboard import build_leaderboard, expected_from_rows, rich_table
    from zoo_bench.report_html import write_outputs
    from zoo_bench.results import read_cells
    from zoo_bench.runner import suite_configs
    from zoo_bench.suite import current_versions, expected_for_suite
    from zoo_bench.terminal import Fitted

    console = Console()
    try:
        if results is None:
            name = suite_name or (None if suite_file is not None else "default")
            results = results_folder(None, name or _only_suite(suite_file))
        rows = read_cells(results)
        if rows.empty:
            raise ZooBenchError(f"no results in {results}; run `zoo-bench run` first")
        chosen_seeds = parse_seeds(seeds) if seeds else None
        suite = _suite_of(list(rows["suite"].dropna()), suite_name, suite_file)
        if suite is None:
            expected = expected_from_rows(rows, prop, seeds=chosen_seeds)
            versions, configs = None, None
        else:
            expected = expected_for_suite(suite, rows, chosen_seeds)
            if prop is not None:
                expected = dataclasses.replace(expected, property=prop)
            versions = current_versions(suite)
            configs = suite_configs(suite, set(rows["method"]))
        lb = build_leaderboard(rows, expected, versions, configs)
        paths = write_outputs(lb, out or results)
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    console.print(Fitted(rich_table(lb)))
    console.print(f"wrote {paths['markdown']} and {paths['html']}", markup=False,
                  highlight=False)


def _only_suite(suite_file: Path | None) -> str:
    from zoo_bench.spec import load_spec

    return load_spec(None, suite_file).name


def _suite_of(rows_suites: Sequence[str], name: str | None, suite_file: Path | None) -> Any:
    """The suite asked for, else the one suite every stored row names (if it still loads)."""
    from zoo_bench.suite import load_suite

    if name is not None:
        return load_suite(name, suite_file)
    named = set(rows_suites)
    if len(named) != 1:
        return None
    try:
        return load_suite(named.pop(), suite_file)
    except ZooBenchError:
        return None
