"""`zoo-bench suites`: every suite of the suite file with its size and estimated cost."""

from __future__ import annotations

from pathlib import Path

import click

from zoo_bench.commands.run_cmds import SUITE_FILE_OPTION
from zoo_bench.errors import ZooBenchError


@click.command("suites")
@SUITE_FILE_OPTION
def suites(suite_file: Path | None) -> None:
    """List the suites with their zoos, fits, cells and estimated time from scratch."""
    from rich.table import Table

    from zoo_bench.plan import duration, suite_cost
    from zoo_bench.spec import read_benchmark_toml, suite_names
    from zoo_bench.suite import load_suite
    from zoo_bench.terminal import Fitted, make_console, name_column

    try:
        path, _ = read_benchmark_toml(suite_file)
        plans = {name: suite_cost(load_suite(name, suite_file)) for name in suite_names(path)}
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    table = Table(title=f"Suites of {path}", title_justify="left")
    name_column(table, "suite", plans)
    for header in ("zoos (training runs)", "methods x tasks x seeds", "fits", "cells",
                   "time from scratch"):
        table.add_column(header, justify="left" if "x" in header else "right")
    for name, plan in plans.items():
        runs = sum(z.runs or 0 for z in plan.zoos if z.preset is not None)
        zoos = f"{len(plan.zoos)} ({runs:,})" if runs else str(len(plan.zoos))
        shape = f"{len(plan.methods)} x {len(plan.tasks)} x {len(plan.seeds)}"
        time = duration(plan.whole_seconds) + (" + ?" if plan.unmeasured else "")
        table.add_row(name, zoos, shape, f"{plan.fits:,}", f"{plan.cells:,}", time)
    out = make_console()
    out.print(Fitted(table))
    out.print(
        "Time: zoo generation and fits one after another, from measured costs on a 2-core CPU "
        "VM (one torch thread per fit); `zoo-bench run --suite NAME --dry-run` shows the plan "
        "in detail, with what is already stored. The small ci suite is the one to try first.",
        markup=False)
