"""`zoo-bench tasks`: what each task scores; for a suite, its zoos and how many cells it makes."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from zoo_bench.errors import ZooBenchError
from zoo_bench.evaluator import Evaluator
from zoo_bench.suite import Suite, load_suite, present_zoos
from zoo_bench.tasks import ZooInfo, get_task, list_tasks, zoo_info


@click.command("tasks")
@click.option("--suite", "suite_name", default=None, help="Also show this suite's zoos and cells.")
@click.option(
    "--file",
    "toml_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The benchmark.toml to read (default: ./benchmark.toml, then the one by the package).",
)
@click.option("--contract", is_flag=True, help="Print the evaluator's input/output contract.")
def tasks(suite_name: str | None, toml_path: Path | None, contract: bool) -> None:
    """List the benchmark tasks; with --suite, the suite's zoos and cell counts."""
    try:
        suite = load_suite(suite_name, toml_path) if suite_name is not None else None
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title="Tasks", title_justify="left")
    table.add_column("task")
    table.add_column("what it scores")
    for task in list_tasks():
        table.add_row(escape(task.name), escape(task.description))
    console.print(table)
    console.print(
        "Every cell is scored by zoo_bench.Evaluator: Kendall's tau-b (headline) with a bootstrap "
        "95% interval, Spearman, R^2, MAE" + ("." if contract else " (--contract for details).")
    )
    if contract:
        console.print(Evaluator.contract(), markup=False)
    if suite is not None:
        _show_suite(console, suite)


def _show_suite(console: Console, suite: Suite) -> None:
    console.print(
        f"\nSuite [bold]{escape(suite.name)}[/] "
        + escape(
            f"({suite.path}): zoos {suite.zoos!r}, methods {list(suite.methods)}, "
            f"seeds {list(suite.seeds)}, property {suite.property}, epochs {suite.epochs}"
        )
    )
    present = present_zoos(suite)
    infos: dict[str, ZooInfo] = suite.expected_infos()
    zt = Table(title="Zoos", title_justify="left")
    for col in ("zoo", "dataset", "family", "networks", "runs"):
        zt.add_column(col, justify="right" if col in ("networks", "runs") else "left")
    for name in suite.zoo_names():
        zoo = present.get(name)
        if zoo is not None:
            infos[name] = zoo_info(zoo)
        info = infos.get(name, ZooInfo(None, None))
        size = (str(len(zoo)), str(zoo.table["run_id"].nunique())) if zoo else ("not present", "")
        zt.add_row(*(escape(c) for c in (name, info.dataset or "?", info.family or "?", *size)))
    console.print(zt)
    ct = Table(title="Cells", title_justify="left")
    for col in ("task", "per seed", f"x {len(suite.seeds)} seeds"):
        ct.add_column(col, justify="left" if col == "task" else "right")
    for name in suite.tasks:
        n = len(get_task(name).pairs(infos))
        ct.add_row(escape(name), str(n), str(n * len(suite.seeds)))
    console.print(ct)
    unknown = [n for n in suite.zoo_names() if n not in infos]
    if unknown:
        console.print(
            escape(f"Not present, dataset and family unknown until fetched: {', '.join(unknown)}; ")
            + "the cell counts leave them out."
        )
    if len(present) < len(suite.zoo_names()):
        console.print("Zoos not present are generated or downloaded when the suite runs.")
