"""`zoo-bench tasks`: what each task scores; for a suite, its zoos and how many cells it makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo_bench.commands.run_cmds import SUITE_FILE_OPTION, parse_seeds
from zoo_bench.errors import ZooBenchError


@click.command("tasks")
@click.option("--suite", "suite_name", default=None, help="Also show this suite's zoos and cells.")
@SUITE_FILE_OPTION
@click.option("--contract", is_flag=True, help="Print the evaluator's input/output contract.")
@click.option("--list-seeds", is_flag=True,
              help="Print only the suite's seeds, space separated (for scripts); with --seeds, "
                   "those seeds instead, e.g. 0-2,7 -> 0 1 2 7.")
@click.option("--seeds", "seeds_text", default=None, help="With --list-seeds: seeds to expand.")
def tasks(suite_name: str | None, suite_file: Path | None, contract: bool,
          list_seeds: bool, seeds_text: str | None) -> None:
    """List the benchmark tasks; with --suite, the suite's zoos (with sizes) and cell counts."""
    from rich.markup import escape
    from rich.table import Table

    from zoo_bench.evaluator import Evaluator
    from zoo_bench.suite import load_suite
    from zoo_bench.tasks import list_tasks
    from zoo_bench.terminal import Fitted, make_console, name_column

    try:
        if suite_name is None and suite_file is not None:
            from zoo_bench.spec import load_spec

            suite_name = load_spec(None, suite_file).name
        suite = load_suite(suite_name, suite_file) if suite_name is not None else None
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    if list_seeds:
        if suite is None:
            raise click.UsageError("--list-seeds needs --suite (or --suite-file)")
        seeds = parse_seeds(seeds_text) if seeds_text is not None else suite.seeds
        click.echo(" ".join(str(s) for s in seeds))
        return
    console = make_console()
    table = Table(title="Tasks", title_justify="left")
    all_tasks = list_tasks()
    name_column(table, "task", [t.name for t in all_tasks])
    table.add_column("what it scores")
    for task in all_tasks:
        table.add_row(escape(task.name), escape(task.description))
    console.print(Fitted(table))
    console.print(
        "Every cell is scored by zoo_bench.Evaluator: Kendall's tau-b (headline) with a bootstrap "
        "95% interval, Spearman, R^2, MAE" + ("." if contract else " (--contract for details).")
    )
    if contract:
        console.print(Evaluator.contract(), markup=False)
    if suite is not None:
        _show_suite(console, suite)


def _show_suite(console: Any, suite: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from zoo_bench.spec import ZooInfo
    from zoo_bench.suite import present_zoos
    from zoo_bench.tasks import get_task, zoo_info
    from zoo_bench.terminal import Fitted, name_column

    console.print(
        f"\nSuite [bold]{escape(suite.name)}[/] "
        + escape(
            f"({suite.path}): zoos {suite.zoos!r}, methods {list(suite.methods)}, "
            f"seeds {list(suite.seeds)}, property {suite.property}, epochs {suite.epochs}"
        )
    )
    present = present_zoos(suite)
    infos: dict[str, ZooInfo] = suite.expected_infos()
    made_by = suite.zoo_presets()
    zt = Table(title="Zoos", title_justify="left")
    name_column(zt, "zoo", suite.zoo_names())
    for col in ("dataset", "family", "networks (runs)", "state"):
        zt.add_column(col, justify="right" if col.startswith("networks") else "left")
    for name in suite.zoo_names():
        zoo = present.get(name)
        family = infos[name].family if name in infos else None
        preset = made_by.get(name)
        planned = suite.expected_networks(family, preset) if family is not None else None
        runs = suite.expected_runs(family, preset) if family is not None else None
        if zoo is not None:
            infos[name] = zoo_info(zoo)
            size = (f"{len(zoo)} ({zoo.table['run_id'].nunique()})", "present")
        elif planned is not None:
            size = (f"{planned} ({runs})", "planned")
        else:
            size = ("?", "not present")
        info = infos.get(name, ZooInfo(None, None))
        zt.add_row(*(escape(c) for c in (name, info.dataset or "?", info.family or "?", *size)))
    console.print(Fitted(zt))
    ct = Table(title="Cells", title_justify="left")
    name_column(ct, "task", suite.tasks)
    for col in ("per seed", f"x {len(suite.seeds)} seeds"):
        ct.add_column(col, justify="right")
    for name in suite.tasks:
        n = len(get_task(name).scored_pairs(infos, suite.task_options()))
        ct.add_row(escape(name), str(n), str(n * len(suite.seeds)))
    console.print(Fitted(ct))
    unknown = [n for n in suite.zoo_names() if n not in infos]
    if unknown:
        console.print(
            escape(f"Not present, dataset and family unknown until fetched: {', '.join(unknown)}; ")
            + "the cell counts leave them out."
        )
    if len(present) < len(suite.zoo_names()):
        console.print("Zoos not present are generated or downloaded when the suite runs; "
                      "the sizes of planned ones are the preset's.")
