"""What every importer shares: source checks, hyperparameter column names, a progress bar."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from zoo_bench.errors import ZooImportError
from zoo_bench.progress import progress_bar as make_bar


def require_files(src: Path, names: Iterable[str], what: str) -> None:
    """Fail early, naming every missing file, when `src` is not the folder an importer needs."""
    if not src.is_dir():
        raise ZooImportError(f"{src} is not a folder; point SRC at {what}")
    missing = [n for n in names if not (src / n).is_file()]
    if missing:
        raise ZooImportError(f"{src} lacks {missing}; point SRC at {what}")


def refuse_existing(out: Path, overwrite: bool) -> None:
    """Stop before any work when OUT exists and may not be replaced."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")


def hp_column(key: str) -> str:
    """Table column for a source hyperparameter key: ``optim::lr`` -> ``hp_optim_lr``."""
    return "hp_" + re.sub(r"[^0-9a-zA-Z]+", "_", key).strip("_").lower()


@contextmanager
def progress_bar(total: int, description: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; draws a rich bar over `total` items when enabled, else does nothing."""
    if not enabled:
        yield lambda n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with make_bar(*columns) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
