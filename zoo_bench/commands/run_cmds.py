"""`zoo-bench run` (score methods on a suite's cells) and `zoo-bench leaderboard` (rank them)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console

from zoo_bench.errors import ZooBenchError
from zoo_bench.evaluator import Evaluator
from zoo_bench.leaderboard import (
    Expected,
    build_leaderboard,
    expected_for_suite,
    rich_table,
    write_outputs,
)
from zoo_bench.predictor import get_predictor
from zoo_bench.results import read_cells
from zoo_bench.runner import OVERWRITE_MODES, expected_cells, run_jobs, suite_jobs
from zoo_bench.suite import Suite, load_suite
from zoo_bench.tasks import get_task

RESULTS_OPTION = click.option(
    "--results", type=click.Path(path_type=Path, file_okay=False), default=Path("results"),
    show_default=True, help="Results folder (cells/ and predictions/ tables).",
)
SUITE_FILE_OPTION = click.option(
    "--suite-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
    help="benchmark.toml to read (default: ./benchmark.toml, else the one beside the package).",
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


@click.command()
@click.option("--method", "-m", "methods", multiple=True, metavar="NAME",
              help="Method(s) to run, repeatable or comma separated; `all` (default): the suite's.")
@click.option("--task", "-t", "tasks", multiple=True, metavar="NAME",
              help="Task(s) to run, repeatable or comma separated; `all` (default): the suite's.")
@click.option("--suite", "suite_name", default="default", show_default=True,
              help="Suite of benchmark.toml: zoos, tasks, methods, seeds, budgets.")
@SUITE_FILE_OPTION
@click.option("--seeds", default=None, help="Seeds, e.g. 0-4 or 0,1 (default: the suite's).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@RESULTS_OPTION
@click.option("--overwrite", type=click.Choice(OVERWRITE_MODES), default="only-missing",
              show_default=True,
              help="only-missing: skip stored cells (resume); never: refuse if any is stored; "
              "always: recompute.")
@click.option("--bootstrap-iters", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Bootstrap resamples for each cell's Kendall tau interval.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def run(methods: tuple[str, ...], tasks: tuple[str, ...], suite_name: str,
        suite_file: Path | None, seeds: str | None, device: str, results: Path, overwrite: str,
        bootstrap_iters: int, quiet: bool) -> None:
    """Score methods on a suite: one stored row per (method, task, source, target, seed).

    Zoos the suite needs are generated or downloaded first. Each finished cell is written at
    once, so an interrupted run loses only the cells in flight; run it again to finish.
    """
    console = Console()
    try:
        suite = load_suite(suite_name, suite_file)
        chosen_methods = parse_names(methods, suite.methods)
        chosen_tasks = parse_names(tasks, suite.tasks)
        for m in chosen_methods:
            get_predictor(m)
        for t in chosen_tasks:
            get_task(t)
        chosen_seeds = parse_seeds(seeds) if seeds else suite.seeds
        jobs = suite_jobs(suite, chosen_methods, chosen_tasks, chosen_seeds, progress=not quiet)
        report = run_jobs(
            jobs, results, device=device, overwrite=overwrite, budgets=suite.budgets,
            suite=suite.name, evaluator=Evaluator(n_boot=bootstrap_iters), progress=not quiet,
            console=console,
        )
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    summary = build_leaderboard(read_cells(results), expected_cells(jobs, suite.name))
    console.print(rich_table(summary))
    console.print(
        f"{len(report.computed)} cells computed, {len(report.skipped)} already stored, "
        f"{len(report.not_applicable)} not applicable, {len(report.errors)} failed; "
        f"results in {results}"
    )
    for key, error in report.errors.items():
        console.print(f"[red]failed[/] {key.method} {key.task} {key.source} -> {key.target} "
                      f"seed {key.seed}: {error.splitlines()[0]}", highlight=False)
    if report.errors:
        raise SystemExit(1)


def _suite_of(rows_suites: Sequence[str], name: str | None,
              suite_file: Path | None) -> Suite | None:
    """The suite asked for, else the one suite every stored row names (if it still loads)."""
    if name is not None:
        return load_suite(name, suite_file)
    named = set(rows_suites)
    if len(named) != 1:
        return None
    try:
        return load_suite(named.pop(), suite_file)
    except ZooBenchError:
        return None


@click.command()
@RESULTS_OPTION
@click.option("--suite", "suite_name", default=None,
              help="Suite whose cells are expected (default: the suite the results name, else "
              "the cells found in the results).")
@SUITE_FILE_OPTION
@click.option("--property", "prop", default=None,
              help="Property to rank on (default: the suite's, or the only one stored).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for leaderboard.md and leaderboard.html (default: the results folder).")
def leaderboard(results: Path, suite_name: str | None, suite_file: Path | None,
                prop: str | None, out: Path | None) -> None:
    """Rank methods per task: mean +- std of Kendall's tau over seeds, from stored results.

    Per seed, a task's score is the mean over all its (source, target) cells; a method missing
    any expected cell is shown as incomplete, never averaged over what it has.
    """
    console = Console()
    try:
        rows = read_cells(results)
        if rows.empty:
            raise ZooBenchError(f"no results in {results}; run `zoo-bench run` first")
        suite = _suite_of(list(rows["suite"].dropna()), suite_name, suite_file)
        if suite is None:
            expected = Expected.from_rows(rows, prop)
        else:
            expected = expected_for_suite(suite, rows)
            if prop is not None:
                expected = dataclasses.replace(expected, property=prop)
        lb = build_leaderboard(rows, expected)
        paths = write_outputs(lb, out or results)
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    console.print(rich_table(lb))
    console.print(f"wrote {paths['markdown']} and {paths['html']}")
