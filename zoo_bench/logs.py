"""Logging: library modules log, the command line decides where it goes.

Every module that reports something logs through its own `logging.getLogger(__name__)` and
never prints (progress bars aside: `zoo_bench.progress`). The CLI calls `setup` once: records of
zoo-bench and its built-in methods (`zoo_bench`, `baselines`, `sne`) from INFO up, and other
libraries' warnings, go to the console (stderr, through rich); `--log-file PATH` or
`$ZOO_BENCH_LOG` adds a file with every record from DEBUG up, time-stamped. A Ray worker's
records are caught around its fit (`captured`) and handed back with its cells, and the driver
passes them to its own handlers (`replay`), so they land in the same console and file.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

LOG_ENV = "ZOO_BENCH_LOG"
OURS = ("zoo_bench", "baselines", "sne")  # loggers whose INFO records the console shows
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_TAG = "_zoo_bench_handler"  # marks the handlers `setup` installed, so a second call replaces them
STYLES = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "bold red"}


def _ours(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] in OURS


class ConsoleHandler(logging.Handler):
    """Writes records as plain lines through a rich console (stderr by default): the message
    alone for INFO, `warning: message` (coloured on a terminal) from WARNING up."""

    def __init__(self, console: Console | None = None, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.console = console or Console(stderr=True, highlight=False)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            style = STYLES.get(record.levelno, "")
            self.console.print(Text(text, style=style), soft_wrap=True)
        except Exception:  # a broken console must not break the run (logging's own rule)
            self.handleError(record)


def setup(log_file: str | os.PathLike | None = None, verbose: bool = False,
          console: Console | None = None) -> None:
    """Send records to the console and, if `log_file` (else `$ZOO_BENCH_LOG`) names one, to that
    file; calling it again replaces what an earlier call installed."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _TAG, False)]:
        root.removeHandler(handler)
        handler.close()
    shown = ConsoleHandler(console, logging.DEBUG if verbose else logging.INFO)
    shown.addFilter(lambda r: _ours(r) or r.levelno >= logging.WARNING)
    handlers: list[logging.Handler] = [shown]
    path = log_file or os.environ.get(LOG_ENV) or None
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        kept = logging.FileHandler(path, encoding="utf-8")
        kept.setLevel(logging.DEBUG)
        kept.setFormatter(logging.Formatter(FILE_FORMAT))
        kept.addFilter(lambda r: _ours(r) or r.levelno >= logging.INFO)
        handlers.append(kept)
    for handler in handlers:
        setattr(handler, _TAG, True)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if (path or verbose) else logging.INFO)


class _Collector(logging.Handler):
    """Keeps records (made picklable) to hand them to another process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = dict(record.__dict__)
        fields["msg"], fields["args"] = record.getMessage(), None
        if record.exc_info:
            fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
        fields["exc_info"] = None
        fields.pop("message", None)
        fields["worker"] = f"{socket.gethostname()} pid {os.getpid()}"
        self.records.append(fields)


@contextmanager
def captured(level: int = logging.DEBUG) -> Iterator[list[dict[str, Any]]]:
    """Inside the block, every record of this process at `level` or above is kept (as a plain
    dict a Ray task can return); the list fills as the block runs."""
    root = logging.getLogger()
    collector = _Collector()
    collector.setLevel(level)
    before = root.level
    root.addHandler(collector)
    root.setLevel(min(before, level) if before else level)
    try:
        yield collector.records
    finally:
        root.removeHandler(collector)
        root.setLevel(before)


def replay(records: list[dict[str, Any]]) -> None:
    """Hand records caught in another process (`captured`) to this process's handlers, the
    message prefixed with the worker that logged it."""
    for fields in records:
        record = logging.makeLogRecord(fields)
        record.msg = f"[{fields.get('worker', 'worker')}] {record.msg}"
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
