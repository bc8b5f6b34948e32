"""`zoo-bench zoo info` and `zoo-bench zoo import`: inspect a zoo, convert a published one."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from zoo_bench.errors import RegistryError, ZooBenchError
from zoo_bench.paths import zoo_path
from zoo_bench.progress import progress_bar
from zoo_bench.registry import IMPORTERS
from zoo_bench.store import Zoo


@click.command("info")
@click.argument("path")
@click.option("--verify", is_flag=True,
              help="Also check every file's sha256 and the nonfinite flags (reads all weights).")
def info(path: str, verify: bool) -> None:
    """Show a zoo: architectures, counts, datasets, epochs, properties, size on disk.

    PATH is a zoo folder, or the name of a zoo in the cache (see ZOO_BENCH_HOME).
    """
    folder = resolve_zoo(path)
    try:
        zoo = Zoo.open(folder)
        if verify:
            _verify(zoo)
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    console = Console()
    for table in summary_tables(zoo, verified=verify):
        console.print(table)


@click.command("import")
@click.argument("kind")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Zoo name (default: OUT's folder name).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it already exists.")
def import_(kind: str, src: Path, out: Path, name: str | None, overwrite: bool) -> None:
    """Convert a published zoo at SRC into a zoo folder at OUT.

    KIND is `ctc` (Small CNN Zoo: weights.npy, metrics.csv.gz, layout.csv), `schurholt`
    (Model Zoos: one folder per model with result.json and checkpoint_* folders) or a plug-in
    importer (entry-point group `zoo_bench.importers`).
    """
    try:
        importer = IMPORTERS.get(kind)
    except RegistryError as e:
        raise click.BadParameter(str(e), param_hint="KIND") from None
    try:
        done = importer(src, out, name=name, overwrite=overwrite, progress=True)
        zoo = Zoo.open(done)
    except (ZooBenchError, FileExistsError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"imported {zoo.name}: {len(zoo)} networks from {src} into {done}")


def resolve_zoo(path: str) -> Path:
    """A zoo folder given as a path, else as a name in the cache; a clear error if neither."""
    candidate = Path(path)
    if candidate.is_dir():
        return candidate
    cached = zoo_path(path)
    if cached.is_dir():
        return cached
    raise click.ClickException(
        f"no zoo at {candidate} and none named {path!r} in {cached.parent}; give a zoo "
        "folder, or make one with `zoo-bench zoo import`, `zoo-bench zoo generate` or "
        "`zoo-bench zoo download`"
    )


def summary_tables(zoo: Zoo, verified: bool = False) -> list[Table]:
    """Rich tables for `zoo info`: overview, architectures, properties."""
    s = zoo.summary()
    counted = zoo.nonfinite_count()
    nonfinite = f"{counted:,} (counted in the weights)"
    if counted != s["nonfinite"]:
        nonfinite += (f"; the table flags {s['nonfinite']:,}: the zoo is damaged, run "
                      "`zoo-bench zoo info --verify`")
    overview = Table(title=f"zoo {s['name']}", show_header=False)
    overview.add_column("what", style="bold")
    overview.add_column("value")
    for key, value in (
        ("path", s["path"]),
        ("source", zoo.manifest.get("source", {}).get("kind", "?")),
        ("networks", f"{s['networks']:,}"),
        ("runs", f"{s['runs']:,}"),
        ("non-finite", nonfinite),
        ("datasets", ", ".join(f"{d} ({n:,})" for d, n in s["datasets"].items())),
        ("epochs", ", ".join(str(e) for e in s["epochs"])),
        ("hyperparameters", ", ".join(zoo.hyperparameters)),
        ("size on disk", _human_bytes(s["bytes"])),
        ("verified", "yes: sha256 and nonfinite flags match" if verified else "no (--verify)"),
    ):
        overview.add_row(key, value)
    archs = Table(title="architectures")
    for col in ("name", "family", "layers", "input", "params", "networks"):
        archs.add_column(col, justify="right" if col in ("params", "networks") else "left")
    for name, facts in s["architectures"].items():
        arch = zoo.architectures[name]
        shape = "x".join(map(str, arch.input_shape))
        archs.add_row(name, arch.family, str(len(arch.layers)), shape,
                      f"{facts['params']:,}", f"{facts['count']:,}")
    props = Table(title="properties")
    props.add_column("property")
    for col in ("mean", "std", "min", "median", "max"):
        props.add_column(col, justify="right")
    for prop, stats in s["properties"].items():
        props.add_row(prop, *(f"{stats[k]:.4g}" for k in ("mean", "std", "min", "50%", "max")))
    return [overview, archs, props]


def _verify(zoo: Zoo) -> None:
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with progress_bar(*columns) as bar:
        task = bar.add_task("verify", total=len(zoo))
        zoo.verify(progress=lambda done: bar.update(task, completed=done))


def _human_bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
