"""Suites from benchmark.toml, getting their zoos, and `zoo-bench tasks`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zoo_bench import Zoo, ZooWriter
from zoo_bench.cli import main
from zoo_bench.errors import ZooFormatError
from zoo_bench.families import ctc
from zoo_bench.suite import SuiteError, ensure_zoos, load_suite, present_zoos, suite_names

REPO_TOML = Path(__file__).resolve().parents[1] / "benchmark.toml"

TOML = """
[generate.toy]
datasets = ["digits", "mnist1d"]
families = ["ctc"]
runs = 6
epochs = 2
checkpoints = [0, 2]

[suites.toy]
zoos = "generate:toy"
tasks = ["standard", "cross_dataset", "cross_arch"]
methods = ["statnn", "sne"]
seeds = [0, 1, 2]
epochs = "all"

[suites.toy.budgets.sne]
max_epochs = 3
max_seconds = 60
lr = 0.001

[suites.real]
zoos = ["ctc-mnist", "ctc-svhn"]
tasks = ["standard", "nfn"]
methods = ["statnn"]
seeds = [0]
property = "generalization_gap"

[suites.real.permutations]
ctc-mnist = "splits/mnist_split.csv"
"""


def write_toml(folder: Path, text: str = TOML) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "benchmark.toml").write_text(text)
    return folder / "benchmark.toml"


def write_zoo(out: Path, name: str, dataset: str) -> Path:
    arch = ctc(size=16)
    rng = np.random.default_rng(0)
    with ZooWriter(out, name, [arch], {"kind": "test"}) as w:
        for r in range(6):
            w.add(arch.name, rng.normal(size=arch.n_params), run_id=f"r{r}", dataset=dataset,
                  epoch=1, hp_activation="relu", test_accuracy=float(rng.uniform()))
    return out


def table_row(output: str, first: str) -> list[str]:
    """The cells of the rich-table row whose first cell is `first`."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{output}")


def test_a_generated_suite_names_its_zoos_and_budgets(tmp_path):
    suite = load_suite("toy", write_toml(tmp_path))
    assert suite.zoo_names() == ["toy-digits-ctc", "toy-mnist1d-ctc"]
    assert suite.seeds == (0, 1, 2) and suite.epochs == "all"
    assert suite.property == "test_accuracy"
    assert suite.budget("sne") == {"max_epochs": 3, "max_seconds": 60, "lr": 0.001}
    assert suite.budget("statnn") == {}


def test_a_catalog_suite_keeps_its_names_and_resolves_permutations(tmp_path):
    path = write_toml(tmp_path)
    suite = load_suite("real", path)
    assert suite.zoo_names() == ["ctc-mnist", "ctc-svhn"]
    assert suite.property == "generalization_gap"
    assert suite.task_options() == {
        "permutations": {"ctc-mnist": tmp_path / "splits" / "mnist_split.csv"}
    }


def test_the_repository_suites_load():
    for name in suite_names(REPO_TOML):
        suite = load_suite(name, REPO_TOML)
        assert suite.zoo_names() and suite.seeds


def test_benchmark_toml_is_found_in_the_working_directory(tmp_path, monkeypatch):
    write_toml(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert load_suite("toy").path == tmp_path / "benchmark.toml"


def test_unknown_suite_lists_the_valid_names(tmp_path):
    with pytest.raises(SuiteError, match=r"did you mean 'toy'\? Suites: \['real', 'toy'\]"):
        load_suite("tyo", write_toml(tmp_path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("seeds = [0, 1, 2]", "seeds = [0, 0]"), "repeat a seed"),
        (("seeds = [0, 1, 2]", 'seeds = ["0"]'), "seeds must be a non-empty list of integers"),
        (('"cross_arch"]', '"cross_arc"]'), "did you mean 'cross_arch'"),
        (('epochs = "all"', 'epoch = "all"'), "unknown key 'epoch'; did you mean 'epochs'\\?"),
        (('epochs = "all"', 'epochs = "last"'), "epochs 'last' is not one of"),
        (("max_epochs = 3", "max_epochs = -3"), "budgets.sne.max_epochs must be a positive"),
        (("[suites.toy.budgets.sne]", "[suites.toy.budgets.gnn]"), "unknown predictor 'gnn'"),
        (("max_epochs = 3", "max_epoch = 3"),
         "sne has no hyperparameter or budget key 'max_epoch'; did you mean 'max_epochs'"),
        (('methods = ["statnn", "sne"]', 'methods = ["statnn", "snee"]'),
         "unknown predictor 'snee'; did you mean 'sne'"),
        (('zoos = "generate:toy"', 'zoos = "generate:big"'), r"no \[generate.big\]"),
        (('property = "generalization_gap"', 'property = "accuracy"'), "property 'accuracy'"),
    ],
)
def test_malformed_suites_are_named(tmp_path, change, message):
    path = write_toml(tmp_path, TOML.replace(*change))
    name = "real" if "property" in change[0] else "toy"
    with pytest.raises(SuiteError, match=message):
        load_suite(name, path)


def test_ensure_zoos_generates_a_preset(tmp_path, monkeypatch):
    calls = []

    def fake_generate_preset(preset, out_dir=None, only=None, progress=True, table=None):
        calls.append((preset, out_dir, only, progress, table["runs"]))
        return {f"toy-{d}-ctc": write_zoo(tmp_path / d, f"toy-{d}-ctc", d)
                for d in ("digits", "mnist1d")}

    monkeypatch.setattr("zoo_bench.generate.generate_preset", fake_generate_preset, raising=False)
    zoos = ensure_zoos(load_suite("toy", write_toml(tmp_path)), progress=False)
    assert calls == [("toy", None, None, False, 6)]  # the suite file's own preset table
    assert sorted(zoos) == ["toy-digits-ctc", "toy-mnist1d-ctc"]
    assert all(isinstance(z, Zoo) for z in zoos.values())


def test_ensure_zoos_fetches_catalog_zoos(tmp_path, monkeypatch):
    fetched = []

    def fake_ensure_zoo(name, progress=True):
        fetched.append(name)
        return write_zoo(tmp_path / name, name, name.split("-")[1])

    monkeypatch.setattr("zoo_bench.catalog.ensure_zoo", fake_ensure_zoo)
    zoos = ensure_zoos(load_suite("real", write_toml(tmp_path)), progress=False)
    assert fetched == ["ctc-mnist", "ctc-svhn"]
    assert zoos["ctc-svhn"].datasets == ["svhn"]


def test_a_damaged_zoo_of_the_right_size_is_refused_before_any_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    paths = {name: write_zoo(tmp_path / name, name, name.split("-")[1])
             for name in ("ctc-mnist", "ctc-svhn")}
    monkeypatch.setattr("zoo_bench.catalog.ensure_zoo", lambda name, progress=True: paths[name])
    suite = load_suite("real", write_toml(tmp_path))
    assert sorted(ensure_zoos(suite, progress=False)) == ["ctc-mnist", "ctc-svhn"]
    weights = paths["ctc-svhn"] / "weights.f32"
    data = bytearray(weights.read_bytes())  # a NaN of the right size; the flags still say 0
    data[8:12] = np.float32(np.nan).tobytes()
    weights.write_bytes(bytes(data))
    with pytest.raises(ZooFormatError, match="ctc-svhn"):
        ensure_zoos(suite, progress=False)


def test_tasks_command_lists_tasks_and_a_suites_cells(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    path = write_toml(tmp_path / "conf")
    write_zoo(tmp_path / "home" / "zoos" / "toy-digits-ctc", "toy-digits-ctc", "digits")
    assert sorted(present_zoos(load_suite("toy", path))) == ["toy-digits-ctc"]

    plain = CliRunner().invoke(main, ["tasks"])
    assert plain.exit_code == 0, plain.output
    for name in ("standard", "cross_dataset", "cross_arch", "nfn"):
        assert name in plain.output
    assert "[suites.<name>.permutations]" in plain.output  # printed, not eaten as markup

    result = CliRunner().invoke(main, ["tasks", "--suite", "toy", "--suite-file", str(path)])
    assert result.exit_code == 0, result.output
    assert table_row(result.output, "toy-digits-ctc") == [
        "toy-digits-ctc", "digits", "ctc", "6", "6", "present"]
    # a zoo not generated yet: its planned size, runs x stored checkpoints (0 and 2)
    assert table_row(result.output, "toy-mnist1d-ctc")[3:5] == ["12", "6"]
    assert "not present" in result.output
    cells = result.output.split("Cells")[-1]  # per seed, x 3 seeds
    assert table_row(cells, "standard")[1:] == ["2", "6"]
    assert table_row(cells, "cross_dataset")[1:] == ["4", "12"]
    assert table_row(cells, "cross_arch")[1:] == ["2", "6"]  # one family: only the diagonal


def test_tasks_command_rejects_an_unknown_suite(tmp_path):
    result = CliRunner().invoke(main, ["tasks", "--suite", "nope", "--suite-file",
                                       str(write_toml(tmp_path))])
    assert result.exit_code != 0
    assert "no suite 'nope'" in result.output


def test_tasks_command_prints_the_evaluator_contract():
    result = CliRunner().invoke(main, ["tasks", "--contract"])
    assert "kendall_tau_lo" in result.output
