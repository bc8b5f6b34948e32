"""Leaderboard: two-step mean over seeds, incomplete methods never averaged, ranks, outputs."""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import HANG_SECONDS
from matplotlib.image import imread

from zoo_bench.errors import ZooBenchError
from zoo_bench.leaderboard import (
    COMPLETE,
    INCOMPLETE,
    NOT_APPLICABLE,
    NOT_SIGNIFICANT,
    PARTIAL,
    Expected,
    build_leaderboard,
    expected_from_rows,
    to_markdown,
)
from zoo_bench.provenance import now
from zoo_bench.report_html import write_outputs
from zoo_bench.results import (
    STATUS_NOT_APPLICABLE,
    STATUS_OK,
    CellKey,
    new_row,
    read_cells,
    write_cell,
)
from zoo_bench.spec import load_spec
from zoo_bench.suite import expected_for_suite

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "scripts" / "screenshot_leaderboard.py"
PAIRS = {
    "standard": [("z1", "z1"), ("z2", "z2")],
    "cross": [("z1", "z2"), ("z2", "z1"), ("z1", "z3")],
}
SEEDS = (0, 1, 2, 3, 4)


def tau_of(method: str, task: str, source: str, target: str, seed: int) -> float:
    """Synthetic scores: a clearly beats b; b and b2 differ by noise only."""
    rng = np.random.default_rng(zlib.crc32(f"{method}/{task}/{source}/{target}/{seed}".encode()))
    base = {"a": 0.7, "b": 0.3, "b2": 0.3, "c": 0.5, "d": 0.4}[method]
    return float(np.clip(base + rng.normal(0, 0.05), -1, 1))


def store(results: Path, method: str, task: str, source: str, target: str, seed: int,
          status: str = STATUS_OK) -> None:
    key = CellKey(method, task, source, target, seed, "test_accuracy")
    tau = tau_of(method, task, source, target, seed) if status == STATUS_OK else None
    write_cell(results, new_row(key, status=status, kendall_tau=tau, timestamp=now(),
                                run_id="r1", fit_seconds=1.0, predict_seconds=0.5,
                                git_commit="abc", device="cpu (x86_64)"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """a, b, b2: every cell; c: one cell missing; d: cross task not applicable (read only)."""
    folder = tmp_path_factory.mktemp("results")
    for method in ("a", "b", "b2", "c", "d"):
        for task, pairs in PAIRS.items():
            for source, target in pairs:
                for seed in SEEDS:
                    if method == "c" and (task, source, seed) == ("cross", "z2", 3):
                        continue
                    na = method == "d" and task == "cross"
                    store(folder, method, task, source, target, seed,
                          STATUS_NOT_APPLICABLE if na else STATUS_OK)
    return folder


def expected(**kw) -> Expected:
    args = dict(property="test_accuracy", methods=("a", "b", "b2", "c", "d"),
                tasks=tuple(PAIRS), seeds=SEEDS,
                pairs={t: frozenset(p) for t, p in PAIRS.items()}, suite="synthetic")
    return Expected(**{**args, **kw})


def test_score_is_the_mean_over_seeds_of_the_mean_over_cells(results):
    lb = build_leaderboard(read_cells(results), expected())
    e = lb.entry("a", "cross")
    per_seed = [np.mean([tau_of("a", "cross", s, t, seed) for s, t in PAIRS["cross"]])
                for seed in SEEDS]
    assert e.state == COMPLETE and e.n_ok == e.n_expected == 15
    assert e.per_seed == pytest.approx(dict(enumerate(per_seed)))
    assert e.mean == pytest.approx(np.mean(per_seed))
    assert e.std == pytest.approx(np.std(per_seed, ddof=1))


def test_a_method_missing_a_cell_is_incomplete_and_never_averaged(results):
    lb = build_leaderboard(read_cells(results), expected())
    e = lb.entry("c", "cross")
    assert e.state == INCOMPLETE and (e.n_ok, e.n_missing) == (14, 1)
    assert np.isnan(e.mean) and e.rank is None
    assert e.text() == "incomplete (14/15)"
    assert lb.entry("c", "standard").state == COMPLETE


def test_not_applicable_cells_are_shown_as_such_not_ranked(results):
    lb = build_leaderboard(read_cells(results), expected())
    assert lb.entry("d", "cross").state == NOT_APPLICABLE
    assert lb.entry("d", "cross").text() == "n/a"
    assert lb.entry("d", "cross").rank is None
    assert lb.entry("d", "standard").rank is not None


def test_a_task_pair_nobody_ran_makes_everyone_incomplete(results):
    pairs = {**{t: frozenset(p) for t, p in PAIRS.items()},
             "standard": frozenset([*PAIRS["standard"], ("z3", "z3")])}
    lb = build_leaderboard(read_cells(results), expected(pairs=pairs))
    assert {lb.entry(m, "standard").state for m in expected().methods} == {INCOMPLETE}
    assert lb.entry("a", "standard").text() == "incomplete (10/15)"


def test_ranks_and_the_not_significant_mark(results):
    lb = build_leaderboard(read_cells(results), expected())
    ranked = sorted((e for e in lb.entries.values() if e.task == "cross" and e.rank),
                    key=lambda e: e.rank)
    assert [e.method for e in ranked][:1] == ["a"]
    assert [e.rank for e in ranked] == list(range(1, len(ranked) + 1))
    assert lb.entry("a", "cross").lead_significant is True
    assert NOT_SIGNIFICANT not in lb.entry("a", "cross").text()
    b_first = min(lb.entry("b", "cross"), lb.entry("b2", "cross"), key=lambda e: e.rank)
    assert b_first.lead_significant is False
    assert b_first.text().endswith(NOT_SIGNIFICANT)
    last = ranked[-1]
    assert last.lead_significant is None and NOT_SIGNIFICANT not in last.text()


def test_expected_cells_can_be_inferred_from_the_rows(results):
    rows = read_cells(results)
    exp = expected_from_rows(rows)
    assert exp.inferred and exp.seeds == SEEDS and set(exp.tasks) == set(PAIRS)
    assert exp.pairs["cross"] == frozenset(PAIRS["cross"])
    lb = build_leaderboard(rows, exp)
    assert lb.entry("c", "cross").state == INCOMPLETE
    assert "inferred" in to_markdown(lb)


def test_several_properties_need_a_choice(results, tmp_path):
    results = shutil.copytree(results, tmp_path / "results")
    write_cell(results, new_row(CellKey("a", "standard", "z1", "z1", 0, "test_loss"),
                                status=STATUS_OK, kendall_tau=0.1, timestamp=now()))
    rows = read_cells(results)
    with pytest.raises(ZooBenchError, match="--property"):
        expected_from_rows(rows)
    assert expected_from_rows(rows, property="test_loss").tasks == ("standard",)


def test_markdown_shows_every_entry(results):
    lb = build_leaderboard(read_cells(results), expected())
    md = to_markdown(lb)
    a = lb.entry("a", "cross")
    assert f"{a.mean:.3f} \u00b1 {a.std:.3f} (#1)" in md
    assert "incomplete (14/15)" in md and "| n/a |" in md
    assert "## Provenance" in md and "abc" in md


def test_transfer_only_view_averages_the_off_diagonal_pairs(results):
    lb = build_leaderboard(read_cells(results), expected())
    header, rows = lb.transfer_rows()
    assert header == ["method", "cross off-diagonal (3 pairs)"]  # standard has no off-diagonal
    by_method = {r[0]: r[1] for r in rows}
    want = np.mean([np.mean([tau_of("a", "cross", s, t, seed) for seed in SEEDS])
                    for s, t in PAIRS["cross"]])
    assert by_method["a"] == f"{want:.3f}"
    assert by_method["c"] == "\u2013" and by_method["d"] == "\u2013"  # incomplete, n/a
    assert "## Transfer only" in to_markdown(lb)


def test_family_view_scores_each_source_to_target_family_direction(results):
    # z1 is a CNN zoo, z2 and z3 ViT zoos: cross holds cnn -> vit (z1 -> z2, z1 -> z3) and
    # vit -> cnn (z2 -> z1); the standard task's diagonal never crosses families
    lb = build_leaderboard(read_cells(results),
                           expected(families={"z1": "cnn", "z2": "vit", "z3": "vit"}))
    header, rows = lb.family_rows()
    assert header == ["method", "cnn -> vit (cross, 2 pairs)", "vit -> cnn (cross, 1 pair)"]
    by_method = {r[0]: r[1:] for r in rows}
    per_seed = [np.mean([tau_of("a", "cross", "z1", t, seed) for t in ("z2", "z3")])
                for seed in SEEDS]
    assert by_method["a"][0] == (f"{np.mean(per_seed):.3f} \u00b1 "
                                 f"{np.std(per_seed, ddof=1):.3f} (#1)")
    assert by_method["c"][1] == "incomplete (4/5)"  # its missing cell is z2 -> z1, seed 3
    assert "\u00b1" in by_method["c"][0] and "(#" in by_method["c"][0]  # its cnn -> vit: all
    assert by_method["d"] == ["n/a", "n/a"]
    assert "## Between architecture families" in to_markdown(lb)
    unknown = build_leaderboard(read_cells(results), expected())  # no families given
    assert unknown.family_rows() == ([], [])


def test_html_is_self_contained_with_figures(results, tmp_path):
    lb = build_leaderboard(read_cells(results), expected())
    paths = write_outputs(lb, tmp_path / "out")
    page = paths["html"].read_text()
    assert paths["markdown"].exists()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2, "bars plus one heat map (only the cross task has cross-zoo pairs)"
    for b64 in images:
        assert imread(io.BytesIO(base64.b64decode(b64))).shape[0] > 100
    assert page.count("<table>") == 3
    assert f"{lb.entry('a', 'cross').mean:.3f}" in page


@pytest.fixture
def chromium() -> None:
    """Skip where no Chromium is installed, except in CI (CI=true), where .ci/run installs it
    first: there a missing browser is a failure, so the render is checked on every CI run."""
    if any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but no Chromium: .ci/run installs it (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install -y chromium); the page is still "
                "checked as text by test_html_is_self_contained_with_figures")


def test_chromium_renders_the_page_and_a_blank_page_fails(chromium, results, tmp_path):
    lb = build_leaderboard(read_cells(results), expected())
    html = write_outputs(lb, tmp_path / "out")["html"]
    ok = subprocess.run([sys.executable, SCREENSHOT, html, "--png", tmp_path / "a.png"],
                        capture_output=True, text=True, timeout=HANG_SECONDS)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "a.png").stat().st_size > 10_000

    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")
    bad = subprocess.run([sys.executable, SCREENSHOT, blank, "--png", tmp_path / "b.png"],
                         capture_output=True, text=True, timeout=HANG_SECONDS)
    assert bad.returncode == 1
    assert "blank" in bad.stderr and "table(s)" in bad.stderr


SUITES_TOML = """
[generate.tiny]
datasets = ["a", "b"]
families = ["f", "g"]
runs = 4
epochs = 1
checkpoints = [0, 1]

[suites.tiny]
zoos = "generate:tiny"
tasks = ["standard", "cross_dataset", "cross_arch"]
methods = ["a", "b"]
seeds = [0, 1]

[suites.listed]
zoos = ["zoo-x", "zoo-y"]
tasks = ["standard"]
methods = ["a"]
seeds = [0]
"""


def test_a_generated_suite_expects_its_tasks_pairs_without_any_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    (tmp_path / "benchmark.toml").write_text(SUITES_TOML)
    suite = load_spec("tiny", tmp_path / "benchmark.toml")
    exp = expected_for_suite(suite, read_cells(tmp_path))
    assert not exp.inferred and exp.suite == "tiny"
    assert {t: exp.n_cells(t) for t in exp.tasks} == {
        "standard": 4 * 2, "cross_dataset": 8 * 2, "cross_arch": 8 * 2}
    assert ("tiny-a-f", "tiny-b-f") in exp.pairs["cross_dataset"]
    assert ("tiny-a-f", "tiny-b-g") not in exp.pairs["cross_dataset"]


def test_a_catalog_suite_without_its_zoos_takes_their_pairs_from_the_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    (tmp_path / "benchmark.toml").write_text(SUITES_TOML)
    for zoo in ("zoo-x", "zoo-elsewhere"):
        write_cell(tmp_path, new_row(CellKey("a", "standard", zoo, zoo, 0, "test_accuracy"),
                                     status=STATUS_OK, kendall_tau=0.5, timestamp=now()))
    suite = load_spec("listed", tmp_path / "benchmark.toml")
    exp = expected_for_suite(suite, read_cells(tmp_path))
    assert exp.inferred and exp.pairs["standard"] == {("zoo-x", "zoo-x")}


# --- every method with rows, partial entries, variants, zoo versions ---------------------------


def store_row(results: Path, method: str, task: str, source: str, target: str, seed: int,
              status: str = STATUS_OK, tau: float | None = 0.5, variant: str = "",
              source_sha: str = "s1", target_sha: str = "s1", stamp=None,
              budget: str | None = None) -> None:
    key = CellKey(method, task, source, target, seed, "test_accuracy", variant)
    write_cell(results, new_row(key, status=status,
                                kendall_tau=tau if status == STATUS_OK else None,
                                timestamp=stamp or now(), source_sha256=source_sha,
                                target_sha256=target_sha, budget=budget))


def test_every_method_with_rows_is_shown_with_its_seeds(results):
    lb = build_leaderboard(read_cells(results), expected(methods=("a",), seeds=SEEDS))
    assert lb.methods == ("a", "b", "b2", "c", "d")  # not listed by the suite, still shown
    assert lb.seeds_text("c") == "0, 1, 2, 3, 4"
    assert lb.entry("b", "cross").state == COMPLETE
    one_seed = build_leaderboard(read_cells(results), expected(methods=("a", "zz"), seeds=(0,)))
    assert one_seed.entry("c", "cross").state == COMPLETE  # seed 3's missing cell not expected
    assert one_seed.seeds_text("zz") == "none" and one_seed.entry("zz", "cross").n_ok == 0
    assert "| zz | incomplete (0/2) | incomplete (0/3) | none |" in to_markdown(one_seed)


def test_a_mean_over_applicable_cells_only_is_partial_and_ranked_apart(tmp_path):
    pairs = {"cross": [("z1", "z2"), ("z2", "z1")]}
    for seed in (0, 1):
        for method, base in (("full", 0.3), ("half", 0.9)):
            for source, target in pairs["cross"]:
                na = method == "half" and source == "z2"
                store_row(tmp_path, method, "cross", source, target, seed,
                          STATUS_NOT_APPLICABLE if na else STATUS_OK, base + 0.01 * seed)
    exp = Expected("test_accuracy", ("full", "half"), ("cross",), (0, 1),
                   {"cross": frozenset(pairs["cross"])})
    lb = build_leaderboard(read_cells(tmp_path), exp)
    half, full = lb.entry("half", "cross"), lb.entry("full", "cross")
    assert half.state == PARTIAL and (half.n_ok, half.n_expected) == (2, 4)
    assert half.mean == pytest.approx(0.905) and half.rank == 1
    assert full.state == COMPLETE and full.rank == 1  # ranked among the complete ones
    assert half.text().startswith("0.905 \u00b1 0.007 (partial 2/4 cells, P#1)")
    md = to_markdown(lb)
    assert "partial 2/4 cells" in md and "0.305" in md


def test_a_variant_is_its_own_row_and_never_stands_in_for_the_default(tmp_path):
    for seed in (0, 1):
        store_row(tmp_path, "m", "standard", "z1", "z1", seed, tau=0.2)
        store_row(tmp_path, "m", "standard", "z1", "z1", seed, tau=0.8, variant="lr=0.1")
    store_row(tmp_path, "m", "standard", "z1", "z1", 2, tau=0.8, variant="lr=0.1")
    exp = Expected("test_accuracy", ("m",), ("standard",), (0, 1, 2),
                   {"standard": frozenset({("z1", "z1")})})
    lb = build_leaderboard(read_cells(tmp_path), exp)
    assert lb.methods == ("m", "m[lr=0.1]")
    assert lb.entry("m", "standard").text() == "incomplete (2/3)"
    assert lb.entry("m[lr=0.1]", "standard").mean == pytest.approx(0.8)
    assert lb.seeds_text("m") == "0, 1" and lb.seeds_text("m[lr=0.1]") == "0, 1, 2"


def test_rows_of_another_zoo_version_are_left_out_and_the_versions_named(tmp_path):
    import pandas as pd

    old, new = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-02-01", tz="UTC")
    store_row(tmp_path, "a", "standard", "z1", "z1", 0, tau=0.1, source_sha="v1" * 32,
              target_sha="v1" * 32, stamp=old)
    store_row(tmp_path, "b", "standard", "z1", "z1", 0, tau=0.9, source_sha="v2" * 32,
              target_sha="v2" * 32, stamp=new)
    exp = Expected("test_accuracy", ("a", "b"), ("standard",), (0,),
                   {"standard": frozenset({("z1", "z1")})})
    lb = build_leaderboard(read_cells(tmp_path), exp)
    assert lb.versions == {"z1": "v2" * 32} and lb.left_out == 1
    assert lb.entry("a", "standard").state == INCOMPLETE  # its row scored other networks
    assert lb.entry("b", "standard").state == COMPLETE
    md = to_markdown(lb)
    assert "z1 v2v2v2v2v2v2" in md and "1 stored rows made on other versions" in md
    current = build_leaderboard(read_cells(tmp_path), exp, {"z1": "v1" * 32})
    assert current.entry("a", "standard").state == COMPLETE
    assert current.entry("b", "standard").state == INCOMPLETE


def test_rows_made_with_another_budget_are_left_out_never_mixed_with_current_ones(tmp_path):
    from zoo_bench.results import MethodConfig

    now_budget = MethodConfig({"max_steps": 1500}, "{}", "1")
    store_row(tmp_path, "sne", "standard", "z1", "z1", 0, tau=0.7, budget='{"max_steps": 1500}')
    store_row(tmp_path, "sne", "standard", "z1", "z1", 1, tau=0.5, budget='{"max_steps": 1000}')
    store_row(tmp_path, "sne", "standard", "z1", "z1", 1, tau=0.9, variant="lr=0.1",
              budget='{"lr": 0.1, "max_steps": 1000}')  # a variant is judged by its own label
    exp = Expected("test_accuracy", ("sne",), ("standard",), (0, 1),
                   {"standard": frozenset({("z1", "z1")})})
    lb = build_leaderboard(read_cells(tmp_path), exp, current_configs={"sne": now_budget})
    assert lb.stale == 1 and lb.seeds_text("sne") == "0"
    assert lb.entry("sne", "standard").text() == "incomplete (1/2)"
    assert lb.entry("sne[lr=0.1]", "standard").per_seed == {}  # seed 0 missing: incomplete
    assert "1 stored rows made with another budget" in to_markdown(lb)
    seed0 = build_leaderboard(read_cells(tmp_path), dataclasses.replace(exp, seeds=(0,)),
                              current_configs={"sne": now_budget})
    assert seed0.entry("sne", "standard").mean == pytest.approx(0.7)
    unchecked = build_leaderboard(read_cells(tmp_path), exp)
    assert unchecked.stale == 0 and unchecked.entry("sne", "standard").state == COMPLETE


def test_leaderboard_command_takes_seeds_and_shows_every_method(results, tmp_path):
    from click.testing import CliRunner

    from zoo_bench.cli import main

    out = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["leaderboard", "--results", str(results), "--seeds", "3", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    md = (tmp_path / "leaderboard.md").read_text()
    assert "seeds 3" in md.splitlines()[0]
    c = next(line for line in md.splitlines() if line.startswith("| c |"))
    assert "incomplete (2/3)" in c and c.rstrip(" |").endswith("0, 1, 2, 3, 4")
    assert all(f"| {m} |" in md for m in ("a", "b", "b2", "d"))


def test_every_output_names_the_suites_property(tmp_path):
    """A suite predicting an INR zoo's frequency: titles and figure labels say so."""
    from rich.console import Console

    from zoo_bench.leaderboard import rich_table
    from zoo_bench.report_html import bars_figure, heatmap_figure, render_html

    for method in ("a", "b"):
        for task, pairs in PAIRS.items():
            for source, target in pairs:
                for seed in SEEDS:
                    key = CellKey(method, task, source, target, seed, "frequency")
                    write_cell(tmp_path, new_row(
                        key, status=STATUS_OK, timestamp=now(), run_id="r1", fit_seconds=1.0,
                        kendall_tau=tau_of(method, task, source, target, seed),
                        predict_seconds=0.5, git_commit="abc", device="cpu (x86_64)"))
    lb = build_leaderboard(read_cells(tmp_path),
                           expected(property="frequency", methods=("a", "b")))
    assert lb.entry("a", "cross").state == COMPLETE
    title = "zoo-bench leaderboard: suite `synthetic`, property `frequency`, seeds 0, 1, 2, 3, 4"
    assert to_markdown(lb).startswith(f"# {title}\n")
    table = rich_table(lb)
    assert str(table.title) == title
    console = Console(record=True, width=200)
    console.print(table)
    assert "frequency" in console.export_text()
    page = render_html(lb)
    assert f"<h1>{title}</h1>" in page.replace("&#x27;", "'")
    assert "Kendall's tau per task (property frequency)" in page.replace("&#x27;", "'")
    assert "heat maps of Kendall&#x27;s tau on frequency for task cross" in page
    bars = bars_figure(lb)
    assert bars.axes[0].get_ylabel().startswith("Kendall's tau on frequency")
    heat = heatmap_figure(lb, "cross")
    assert heat._suptitle.get_text() == "cross: predicting frequency"
    assert heat.axes[-1].get_ylabel() == "Kendall's tau on frequency"  # the colour bar
