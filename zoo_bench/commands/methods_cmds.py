"""`zoo-bench methods`: the registered predictors, where each comes from, what it supports."""

from __future__ import annotations

import json

import click


@click.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def methods(as_json: bool) -> None:
    """List the registered predictors (decorator and entry-point plug-ins)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from zoo_bench.predictor import ENTRY_POINT_GROUP, describe_predictors

    infos = describe_predictors()
    rows = [
        {
            "name": info.name,
            "class": info.obj.__qualname__ if info.obj is not None else "",
            "origin": info.origin,
            "supports": info.obj.supports_note if info.obj is not None else "",
            "defaults": dict(info.obj.defaults) if info.obj is not None else {},
            "version": str(getattr(info.obj, "version", "1")) if info.obj is not None else "",
            "error": info.error,
        }
        for info in infos.values()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title="Predictors", title_justify="left")
    for col in ("name", "class", "from", "architectures", "hyperparameters (--set KEY=VALUE)"):
        table.add_column(col)
    for row in rows:
        supports = escape(row["supports"]) or f"[red]unusable: {escape(row['error'])}[/]"
        table.add_row(escape(row["name"]), escape(row["class"]), escape(row["origin"]), supports,
                      escape(", ".join(f"{k}={v!r}" for k, v in row["defaults"].items())))
    console.print(table)
    console.print(
        f"Add one with @zoo_bench.register_predictor(\"name\") or the entry-point group "
        f"{ENTRY_POINT_GROUP!r}; see README, 'Add your own predictor'."
    )
