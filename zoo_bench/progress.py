"""Progress display that suits where the output goes: a live rich bar on a terminal, plain
periodic lines in a log file.

A rich bar redraws itself with cursor codes; written to a file (as `scripts/main.sh` does when
redirected) that leaves fragments like ``cells ━━━ 7… 0:… eta 0…`` and blank lines. Every long
operation therefore asks `progress_bar` for its display: on a terminal it gets
`rich.progress.Progress`; otherwise a `PlainProgress` with the same methods that prints a line
when a task starts, then one every `every_s` seconds or `every_frac` of the total, and one when
it ends.

The time left (`eta`) is the elapsed time scaled by the share of the work still to do, never a
rate over the last seconds: items of unequal cost (a 2 s fit beside a 2 min one) make a short-
window rate swing by hours. A task may carry its share of the estimated work done in the field
`work` (0 to 1, e.g. weighted by measured fit costs); else the share of items done is used. Until
`ETA_AFTER` of the work is done the estimate reads `estimating`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

from rich.console import Console
from rich.filesize import decimal
from rich.progress import Progress, ProgressColumn, Task
from rich.text import Text

WORK = "work"  # task field: share (0-1) of the estimated work done, for a weighted eta
ETA_AFTER = 0.05  # share of the work done before an eta is shown (before: "estimating")


def done_share(completed: float, total: float | None, fields: dict[str, Any]) -> float | None:
    """The share of the work done: the `work` field when the caller weighs its items, else
    completed / total (None without a total)."""
    work = fields.get(WORK)
    if work is not None:
        return float(work)
    return completed / total if total else None


def eta_text(elapsed: float, completed: float, total: float | None,
             fields: dict[str, Any]) -> str:
    """`eta H:MM:SS` from the elapsed time and the share of work done; `eta estimating`
    until `ETA_AFTER` of it (and at least one item) is done; "" when finished or unknown."""
    share = done_share(completed, total, fields)
    if share is None or share >= 1 or (total is not None and completed >= total):
        return ""
    if share < ETA_AFTER or completed <= 0:
        return "eta estimating"
    return f"eta {_clock(elapsed * (1 - share) / share)}"


class EtaColumn(ProgressColumn):
    """rich's time-left column by the rule of `eta_text` (weighted, steady, honest at first)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        return Text(eta_text(elapsed or 0.0, task.completed, task.total, task.fields),
                    style="progress.remaining")


@dataclass
class PlainTask:
    """One task of a `PlainProgress`: what rich's `Task` offers that callers read."""

    id: int
    description: str
    total: float | None
    completed: float
    fields: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    last_time: float = field(default_factory=time.monotonic)
    last_step: int = 0
    finished_shown: bool = False

    @property
    def percentage(self) -> float:
        return 100.0 * self.completed / self.total if self.total else 0.0


class PlainProgress:
    """A stand-in for `rich.progress.Progress` that writes plain lines, for logs and pipes.

    A line for a task is written when it is added, when it has advanced by `every_frac` of its
    total since the last line, when `every_s` seconds have passed since the last line (if it
    advanced), and once when it completes. Lines look like
    ``[progress] cells: 36/120 (30%) elapsed 0:01:02 eta 0:02:25 runs=3/12``.
    """

    def __init__(self, stream: TextIO | None = None, every_s: float = 30.0,
                 every_frac: float = 0.1, unit: str = "", clock: Callable[[], float] | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.every_s, self.every_frac, self.unit = every_s, every_frac, unit
        self.clock = clock or time.monotonic
        self._tasks: dict[int, PlainTask] = {}
        self._next_id = 0

    # --- the part of rich's Progress API the package uses -------------------------------------
    @property
    def tasks(self) -> list[PlainTask]:
        return list(self._tasks.values())

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: float = 0, visible: bool = True, **fields: Any) -> int:
        del start, visible  # rich's display switches: a plain line has none
        tid = self._next_id
        self._next_id += 1
        now = self.clock()
        task = PlainTask(tid, description, total, completed, dict(fields), now, now)
        task.last_step = self._step(task)
        self._tasks[tid] = task
        self._show(task)  # at once, so a log shows what started (not only after `every_s`)
        return tid

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None,
               visible: bool | None = None, refresh: bool = False, **fields: Any) -> None:
        del visible, refresh
        task = self._tasks[task_id]
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if description is not None:
            task.description = description
        task.fields.update(fields)
        self._maybe_show(task)

    def reset(self, task_id: int, *, total: float | None = None, completed: float = 0,
              **fields: Any) -> None:
        task = self._tasks[task_id]
        task.started = task.last_time = self.clock()
        task.total = total if total is not None else task.total
        task.completed = completed
        task.fields.update(fields)
        task.last_step = self._step(task)
        task.finished_shown = False

    def remove_task(self, task_id: int) -> None:
        self._tasks.pop(task_id, None)

    def __getitem__(self, task_id: int) -> PlainTask:
        return self._tasks[task_id]

    def start(self) -> None:
        """Nothing to start: lines are written as tasks advance."""

    def stop(self) -> None:
        """Write a last line for every task that has not shown its final state."""
        for task in self._tasks.values():
            done = task.total is not None and task.completed >= task.total
            if not task.finished_shown and (done or task.completed):
                self._show(task)

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- lines -----------------------------------------------------------------------------
    def _step(self, task: PlainTask) -> int:
        if not task.total or self.every_frac <= 0:
            return 0
        return int(task.completed / task.total / self.every_frac + 1e-9)

    def _maybe_show(self, task: PlainTask) -> None:
        now = self.clock()
        done = task.total is not None and task.completed >= task.total
        if done:
            if not task.finished_shown:
                self._show(task)
            return
        step = self._step(task)
        if step > task.last_step or now - task.last_time >= self.every_s:
            self._show(task)

    def _show(self, task: PlainTask) -> None:
        now = self.clock()
        task.last_time, task.last_step = now, self._step(task)
        task.finished_shown = task.total is not None and task.completed >= task.total
        elapsed = now - task.started
        if task.total:
            amount = f"{self._amount(task.completed)}/{self._amount(task.total)}"
            amount += f" ({task.percentage:.0f}%)"
        else:
            amount = self._amount(task.completed)
        line = f"[progress] {task.description}: {amount} elapsed {_clock(elapsed)}"
        eta = eta_text(elapsed, task.completed, task.total, task.fields)
        line += f" {eta}" if eta else ""
        extras = " ".join(f"{k}={v}" for k, v in task.fields.items()
                          if v not in ("", None) and k != WORK)
        print(f"{line} {extras}".rstrip(), file=self.stream, flush=True)

    def _amount(self, n: float) -> str:
        if self.unit == "bytes":
            return decimal(int(n))
        return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


def progress_bar(*columns: str | ProgressColumn, console: Console | None = None,
                 unit: str = "", every_s: float = 30.0,
                 every_frac: float = 0.1) -> Progress | PlainProgress:
    """The progress display for output going to `console` (default: stderr).

    A terminal gets a live `rich.progress.Progress` with `columns`; anything else (a file, a
    pipe, a CI log) gets a `PlainProgress` writing plain lines to the same stream every
    `every_s` seconds or `every_frac` of a task. `unit="bytes"` prints amounts as sizes. Use it
    as a context manager, with `add_task` / `advance` / `update`, as rich's.
    """
    console = console or Console(stderr=True)
    if console.is_terminal and not console.is_dumb_terminal:
        return Progress(*columns, console=console)
    return PlainProgress(console.file, every_s=every_s, every_frac=every_frac, unit=unit)
