"""`zoo-bench methods`: the registered predictors, where each comes from, what it supports."""

from __future__ import annotations

import json

import click


@click.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of the blocks.")
def methods(as_json: bool) -> None:
    """List the registered predictors (decorator and entry-point plug-ins)."""
    from rich.text import Text

    from zoo_bench.predictor import ENTRY_POINT_GROUP, describe_predictors
    from zoo_bench.terminal import block, make_console

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
            "install": info.install,
        }
        for info in infos.values()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    out = make_console()
    out.print(Text("Predictors", style="bold underline"),
              Text(" (one block each; the name is what -m/--method takes)", style="dim"))
    for row in rows:
        title = Text(row["name"], style="bold")
        if row["class"]:
            title.append(f"  {row['class']}, version {row['version']}", style="dim")
        if row["install"]:
            lines = [("unusable", f"{row['error']}. Install it: {row['install']}")]
        elif row["error"]:
            lines = [("unusable", row["error"])]
        else:
            lines = [("architectures", row["supports"])]
        lines.append(("from", row["origin"]))
        if row["defaults"]:
            lines.append(("hyperparameters (--set KEY=VALUE)",
                          ", ".join(f"{k}={v!r}" for k, v in row["defaults"].items())))
        out.print(block(title, lines))
    out.print(
        "Add one with @zoo_bench.register_predictor(\"name\") or the entry-point group "
        f"{ENTRY_POINT_GROUP!r}; see docs/plugins.md."
    )
