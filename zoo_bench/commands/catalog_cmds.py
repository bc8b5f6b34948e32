"""`zoo-bench zoo list` and `zoo-bench zoo download`: the catalog, and fetching a zoo from it."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from zoo_bench.catalog import ensure_zoo, load_catalog, local_state, plan, size_of
from zoo_bench.download import partial_bytes
from zoo_bench.errors import ZooBenchError
from zoo_bench.paths import home
from zoo_bench.store import Zoo

DIR_HELP = "Cache root to use instead of $ZOO_BENCH_HOME or the user cache (zoos go to DIR/zoos)."
STATE_STYLE = {"ready": "[green]ready[/]", "damaged": "[red]damaged[/]",
               "archive": "[yellow]archive[/]", "partial": "[yellow]partial[/]"}
CHECK_WORDS = {"sha256": "the published sha256", "md5": "the Zenodo record's md5s",
               "lock": "the sha256 recorded on first download"}


@click.command("list")
@click.option("--dir", "dir_", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=DIR_HELP)
def list_zoos(dir_: Path | None) -> None:
    """Show every zoo in the catalog and which are already in the local cache."""
    try:
        catalog = load_catalog()
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    root = dir_ or home()
    table = Table(title=f"Model zoos (cache: {root})", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True)
    for col in ("networks", "size"):
        table.add_column(col, justify="right", no_wrap=True)
    for col in ("check", "licence", "cached"):
        table.add_column(col, no_wrap=True)
    for entry in catalog.values():
        table.add_row(
            entry.name,
            f"{entry.networks:,}" if entry.networks else "?",
            decimal(entry.size) if entry.size else "?",
            entry.checksum,
            entry.licence or "on record",
            STATE_STYLE.get(local_state(entry, root), ""),
        )
    Console().print(table)
    click.echo(
        "check: the published sha256 or Zenodo md5, or `lock` = the sha256 recorded on first "
        "download. ? = not published.\nFetch one with `zoo-bench zoo download NAME`."
    )
    others = other_zoos(root, set(catalog))
    if others:
        table = Table(title="Other zoos in the cache (generated or imported)", box=box.SIMPLE_HEAD,
                      pad_edge=False)
        table.add_column("name", no_wrap=True)
        for col in ("networks", "size"):
            table.add_column(col, justify="right", no_wrap=True)
        for col in ("source", "state"):
            table.add_column(col, no_wrap=True)
        for row in others:
            table.add_row(*row)
        Console().print(table)


def other_zoos(root: Path, known: set[str]) -> list[tuple[str, str, str, str, str]]:
    """Zoo folders in `root/zoos` that are not catalog entries (generated or imported ones):
    name, networks, size on disk, source, and whether they open (ready) or not (damaged)."""
    folder = root / "zoos"
    if not folder.is_dir():
        return []
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if path.name in known:
            continue
        try:
            zoo = Zoo.open(path)
        except (ZooBenchError, OSError, ValueError, KeyError):
            rows.append((path.name, "?", "?", "?", STATE_STYLE["damaged"]))
            continue
        source = zoo.manifest.get("source", {})
        kind = str(source.get("kind", "?")) if isinstance(source, dict) else "?"
        if kind == "generated" and source.get("preset"):
            kind += f" (preset {source['preset']})"
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        rows.append((path.name, f"{len(zoo):,}", decimal(size), kind, STATE_STYLE["ready"]))
    return rows


@click.command("download")
@click.argument("name")
@click.option("--dir", "dir_", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=DIR_HELP)
@click.option("--sha256", default=None,
              help="Expected sha256 of the archive, where the catalog publishes none.")
@click.option("--dry-run", is_flag=True,
              help="Say what would be fetched and how big; fetch nothing.")
def download(name: str, dir_: Path | None, sha256: str | None, dry_run: bool) -> None:
    """Download, verify, unpack and import the zoo NAME from the catalog (see `zoo list`).

    Interrupted downloads resume on the next run. Where no checksum is published, the first
    download's sha256 is recorded in DIR/downloads/sha256.lock.json and later ones must match.
    """
    try:
        if dry_run:
            _dry_run(name, dir_)
            return
        path = ensure_zoo(name, dir_, sha256=sha256, progress=True)
    except ZooBenchError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"zoo {name} is ready at {path}")


def _dry_run(name: str, dir_: Path | None) -> None:
    p = plan(name, dir_)
    if p.cached:
        click.echo(f"zoo {name} is already in the cache at {p.zoo_dir}: nothing to fetch")
        return
    if p.offline:
        e = p.entry
        folder = p.zoo_dir.parent.parent / "downloads" / name
        record = f"Zenodo record {e.zenodo}" if e.zenodo else ", ".join(e.urls)
        click.echo(
            f"offline: the file list of zoo {name} is not known here ({p.offline})\n"
            f"what the catalog says: {record}"
            f"{'; files ' + ', '.join(e.files) if e.files else ''}; "
            f"{decimal(e.size) if e.size else 'size not published'}; "
            f"{f'{e.networks:,} networks' if e.networks else 'network count not published'}; "
            f"checked by {CHECK_WORDS[e.checksum]}; licence {e.licence or 'on record'}\n"
            f"archives placed by hand go in {folder}/; the zoo would be imported with the "
            f"{e.importer} importer into {p.zoo_dir}"
        )
        return
    if p.note:
        click.echo(p.note)
    total = 0
    for f, dest in p.files:
        size = size_of(f)
        total += size or 0
        if dest.exists():
            state = "already downloaded (will be verified)"
        elif partial_bytes(dest):
            state = f"would resume from {decimal(partial_bytes(dest))}"
        else:
            state = "would fetch"
        source = f.urls[0] if f.urls else "(placed by hand)"
        click.echo(f"{state}: {source} ({decimal(size) if size else 'size unknown'}) -> {dest}")
    click.echo(
        f"then unpack and import with the {p.entry.importer} importer into {p.zoo_dir} "
        f"({decimal(total) if total else 'size unknown'} to download; "
        f"checked by {CHECK_WORDS[p.entry.checksum]}; licence {p.licence or 'not stated'})"
    )
