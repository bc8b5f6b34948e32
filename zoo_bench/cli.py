"""The `zoo-bench` command line: one click group whose commands are imported only when used.

`zoo-bench --help` lists the commands from the table below without importing them (nor torch),
so it answers at once; running a command imports its module (`zoo_bench/commands/*`).
"""

from __future__ import annotations

import importlib
import signal
import threading
from types import FrameType
from typing import Any

import click

# command name -> ("module:attribute", its short help; a test keeps them equal to the commands')
COMMANDS = {
    "tasks": ("zoo_bench.commands.tasks_cmds:tasks",
              "List the benchmark tasks; with --suite, the suite's zoos (with sizes) and..."),
    "methods": ("zoo_bench.commands.methods_cmds:methods",
                "List the registered predictors (decorator and entry-point plug-ins)."),
    "suites": ("zoo_bench.commands.suites_cmds:suites",
               "List the suites with their zoos, fits, cells and estimated time from scratch."),
    "run": ("zoo_bench.commands.run_cmds:run",
            "Score methods on a suite: one stored row per (method, task, source, target,..."),
    "leaderboard": (
        "zoo_bench.commands.run_cmds:leaderboard",
        "Rank methods per task: mean +- std of Kendall's tau over seeds, from stored...",
    ),
}
ZOO_COMMANDS = {
    "info": ("zoo_bench.commands.zoo_store:info",
             "Show a zoo: architectures, counts, datasets, epochs, properties, size on disk."),
    "import": ("zoo_bench.commands.zoo_store:import_",
               "Convert a published zoo at SRC into a zoo folder at OUT."),
    "list": ("zoo_bench.commands.catalog_cmds:list_zoos",
             "Show every zoo in the catalog and which are already in the local cache."),
    "download": ("zoo_bench.commands.catalog_cmds:download",
                 "Download, verify, unpack and import the zoo NAME from the catalog (see `zoo..."),
    "generate": ("zoo_bench.commands.generate_cmds:generate",
                 "Train a preset's zoos (one per dataset x family), resuming unfinished ones."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; `--help` uses the stored help."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attr = self.lazy[cmd_name][0].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit=80)))
            else:
                rows.append((name, self.lazy[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (`kill`, a scheduler's stop, `scripts/main.sh` ending its lanes) into an
    exit that unwinds the stack, so half-written temporary files are removed as on Ctrl-C."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(package_name="zoo-bench", prog_name="zoo-bench")
@click.option("--log-file", type=click.Path(dir_okay=False), envvar="ZOO_BENCH_LOG",
              default=None, help="Also write every log record (DEBUG up, time-stamped) to this "
              "file [env: ZOO_BENCH_LOG].")
@click.option("--verbose", "-v", is_flag=True, help="Show DEBUG records on the console too.")
def main(log_file: str | None, verbose: bool) -> None:
    """zoo-bench: predict neural network properties from weights, on standard zoos and tasks."""
    from zoo_bench.logs import setup

    exit_cleanly_on_sigterm()
    setup(log_file, verbose)


@main.group(cls=LazyGroup, lazy=ZOO_COMMANDS)
def zoo() -> None:
    """Get, make and inspect model zoos."""
