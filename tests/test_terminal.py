"""Output that fits an 80-column terminal: the names a user types back (methods, variants,
suites, tasks, zoos) are never cut; other columns wrap, or a table too wide becomes blocks."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console
from rich.table import Table

import zoo_bench
from zoo_bench.cli import main
from zoo_bench.leaderboard import build_leaderboard, rich_table
from zoo_bench.provenance import now
from zoo_bench.results import STATUS_OK, CellKey, new_row, read_cells, write_cell
from zoo_bench.spec import Expected
from zoo_bench.terminal import Fitted, name_column

LONG = "probe_last_layer_norms"
VARIANT = "max_steps=1500,patience_steps=400"


@zoo_bench.register_predictor(LONG)
class ProbeLastLayerNorms(zoo_bench.Predictor):
    """A predictor whose name is long, as plug-ins' names may be."""

    defaults = {"order": 2, "scale_every_layer_by_its_fan_in": True, "label": "x" * 30}
    supports_note = "any network whose last layer is linear, after any number of conv layers"

    def fit(self, train, val, target, ctx) -> None:
        self.fitted = True

    def predict(self, zoo) -> np.ndarray:
        return np.zeros(len(zoo))


def rendered(renderable: object, width: int = 80) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def assert_fits(text: str, width: int = 80) -> None:
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines()), text


def test_methods_lists_every_name_whole_at_80_columns():
    out = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["methods"])
    assert out.exit_code == 0, out.output
    assert_fits(out.output)
    for name in (LONG, "statnn", "sne_stats", "nfn_hnp"):
        assert f"\n{name}  " in out.output  # each method's block starts with its whole name
    assert "scale_every_layer_by_its_fan_in=True" in out.output  # hyperparameters wrap, whole


def leaderboard(methods: dict[str, str]) -> object:
    """A two-task, two-seed leaderboard of these {label: variant} methods."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    for k, (method, variant) in enumerate(methods.items()):
        for task in ("standard", "cross_dataset"):
            for seed in (0, 1):
                key = CellKey(method, task, "z", "z", seed, "test_accuracy", variant)
                write_cell(folder, new_row(key, status=STATUS_OK, timestamp=now(),
                                           kendall_tau=0.1 * k + 0.01 * seed))
    rows = read_cells(folder)
    labels = tuple(dict.fromkeys(rows["method"] + rows["variant"].map(
        lambda v: f"[{v}]" if v else "")))
    expected = Expected(property="test_accuracy", methods=labels,
                        tasks=("standard", "cross_dataset"), seeds=(0, 1),
                        pairs={"standard": frozenset({("z", "z")}),
                               "cross_dataset": frozenset({("z", "z")})})
    return build_leaderboard(rows, expected)


def test_the_leaderboard_keeps_method_and_variant_names_whole_at_80_columns():
    lb = leaderboard({"statnn": "", "sne": VARIANT, LONG: ""})
    text = rendered(Fitted(rich_table(lb)))
    assert_fits(text)
    for label in ("statnn", f"sne[{VARIANT}]", LONG, "cross_dataset"):
        assert label in text
    assert "┃ method" in text  # still a table: the names fit beside the other columns


def test_a_table_that_cannot_fit_becomes_one_block_per_row():
    name = "a_plugin_method_with_a_name_so_long_that_no_table_column_could_fit_it"
    table = Table(title="board")
    name_column(table, "method", [name])
    table.add_column("standard")
    table.add_column("cross_dataset")
    table.add_row(name, "0.704 ± 0.009 (#1)", "0.646 ± 0.016 (#1)")
    text = rendered(Fitted(table))
    assert_fits(text)
    assert f"\n{name}\n" in text
    assert "  standard: 0.704 ± 0.009 (#1)" in text
    assert "┃" not in text
    assert "┃ method" in rendered(Fitted(table), width=160)  # a wide terminal keeps the table


@pytest.mark.parametrize("args", [["tasks", "--suite", "arch"], ["suites"]])
def test_listings_fit_80_columns(args):
    out = CliRunner(env={"COLUMNS": "80"}).invoke(main, args)
    assert out.exit_code == 0, out.output
    assert_fits(out.output)
