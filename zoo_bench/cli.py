"""The `zoo-bench` command line: one click group, each area's commands added from its module."""

from __future__ import annotations

import click

from zoo_bench import __version__


@click.group()
@click.version_option(__version__, prog_name="zoo-bench")
def main() -> None:
    """zoo-bench: predict neural network properties from weights, on standard zoos and tasks."""


@main.group()
def zoo() -> None:
    """Get, make and inspect model zoos."""


from zoo_bench.commands.zoo_store import import_, info  # noqa: E402

zoo.add_command(info)
zoo.add_command(import_)

from zoo_bench.commands.tasks_cmds import tasks  # noqa: E402

main.add_command(tasks)

from zoo_bench.commands.catalog_cmds import download, list_zoos  # noqa: E402

zoo.add_command(list_zoos)
zoo.add_command(download)

from zoo_bench.commands.methods_cmds import methods  # noqa: E402

main.add_command(methods)

from zoo_bench.commands.run_cmds import leaderboard, run  # noqa: E402

main.add_command(run)
main.add_command(leaderboard)

from zoo_bench.commands.generate_cmds import generate  # noqa: E402

zoo.add_command(generate)
