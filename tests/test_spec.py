"""Suites as pure data: suite files that extend, every key checked at load, no heavy imports;
the one registry; a command line that answers --help without torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from zoo_bench.cli import COMMANDS, ZOO_COMMANDS, main
from zoo_bench.errors import RegistryError
from zoo_bench.registry import DATASETS, FAMILIES, IMPORTERS, PREDICTORS, TASKS, did_you_mean
from zoo_bench.spec import EPOCHS, PROPERTIES, SuiteError, load_spec
from zoo_bench.suite import load_suite, method_budget, parse_overrides

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zoo_bench"

MINE = """
[generate.mine]
datasets = ["digits"]
families = ["ctc"]
runs = 16
epochs = 2
checkpoints = [0, 2]

[suites.mine]
extends = "ci"
zoos = "generate:mine"
methods = ["statnn"]

[suites.mine.budgets.statnn]
max_epochs = 7

[suites.mine.budgets.default]
max_epochs = 2
"""


def write(tmp_path: Path, text: str, name: str = "my-suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_suite_file_extends_a_repository_suite(tmp_path):
    suite = load_suite(None, write(tmp_path, MINE))  # the file's only suite
    ci = load_suite("ci", ROOT / "benchmark.toml")
    assert suite.name == "mine" and suite.extends == "ci"
    assert (suite.tasks, suite.seeds) == (ci.tasks, ci.seeds)  # inherited
    assert suite.methods == ("statnn",)  # its own list replaces the inherited one
    assert suite.zoo_names() == ["mine-digits-ctc"] and suite.generate["runs"] == 16
    assert suite.expected_networks("ctc") == 16 * 2
    # budgets: inherited per method, its own override, [budgets.default] for the rest
    assert suite.budget("statnn") == {"max_epochs": 7}
    assert suite.budget("sne") == ci.budget("sne")
    assert suite.budget("some-plugin") == {"max_epochs": 2}
    assert "ci" in suite.presets and "mine" in suite.presets  # presets add up


def test_extends_inside_one_file_and_cycles(tmp_path):
    path = write(tmp_path, MINE + """
        [suites.mine2]
        extends = "mine"
        seeds = [3]
        """)
    suite = load_spec("mine2", path)
    assert suite.zoo_names() == ["mine-digits-ctc"] and suite.seeds == (3,)
    cyclic = write(tmp_path, """
        [suites.a]
        extends = "b"
        [suites.b]
        extends = "a"
        zoos = ["x"]
        tasks = ["standard"]
        methods = ["statnn"]
        seeds = [0]
        """, "cyclic.toml")
    with pytest.raises(SuiteError, match="extends forms a cycle a -> b -> a"):
        load_spec("a", cyclic)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('extends = "ci"', 'extends = "cii"'), "extends 'cii'.*did you mean 'ci'"),
        (("max_epochs = 7", "max_epoch = 7"),
         r"budgets.statnn: statnn has no hyperparameter or budget key 'max_epoch'; did you mean "
         r"'max_epochs'.*Its hyperparameters: .*hidden.*budget keys: max_epochs, max_seconds"),
        (("max_epochs = 2", "max_epoch = 2"),
         "budgets.default: no registered method has .* 'max_epoch'; did you mean 'max_epochs'"),
        (("runs = 16", "run = 16"), r"\[generate.mine\]: unknown key 'run'; did you mean 'runs'"),
        (('datasets = ["digits"]', 'datasets = ["digts"]'),
         "unknown dataset 'digts'; did you mean 'digits'"),
        (('families = ["ctc"]', 'families = ["ctcc"]'),
         "unknown architecture family 'ctcc'; did you mean 'ctc'"),
        (('zoos = "generate:mine"', 'zoos = "generate:mien"'),
         r"no \[generate.mien\]; did you mean 'mine'"),
        (("[suites.mine]", "[suite.mine]"), "unknown top-level key 'suite'; did you mean 'suites'"),
        (('methods = ["statnn"]', 'methods = ["statnn"]\ntargets_only = ["ctc_widths"]'),
         r"targets_only names \['ctc_widths'\], which \[generate.mine\] do not make"),
        (("runs = 16", "runs = 16\nfamily_runs = { ctcc = 4 }"),
         r"family_runs.ctcc: 'ctcc' is not one of the preset's families.*did you mean 'ctc'"),
        (("runs = 16", "runs = 16\nfamily_runs = { ctc = 0 }"),
         "family_runs.ctc must be a positive integer"),
        (('methods = ["statnn"]', 'methods = ["statnn"]\ntargets_only = "ctc"'),
         "targets_only must be a list of architecture family names"),
        (('methods = ["statnn"]', 'methods = ["statnn"]\npairs_with = ["vit"]'),
         r"pairs_with names \['vit'\], which \[generate.mine\] do not make"),
        (('methods = ["statnn"]', 'methods = ["statnn"]\npairs_with = "ctc"'),
         "pairs_with must be a list of architecture family names"),
    ],
)
def test_every_key_is_checked_when_the_file_is_read(tmp_path, change, message):
    path = write(tmp_path, MINE.replace(*change))
    with pytest.raises(SuiteError, match=message):
        load_suite("mine", path)


def test_set_overrides_are_checked_against_the_declared_hyperparameters():
    over = parse_overrides(["max_epochs=3", "statnn.lr=0.01", "mlp.hidden=[8, 8]"],
                           ["statnn", "mlp"])
    assert over == {"statnn": {"max_epochs": 3, "lr": 0.01},
                    "mlp": {"max_epochs": 3, "hidden": [8, 8]}}
    with pytest.raises(SuiteError, match="statnn has no hyperparameter or budget key 'max_epoch'"
                                         "; did you mean 'max_epochs'"):
        parse_overrides(["max_epoch=3"], ["statnn"])
    with pytest.raises(SuiteError, match="method 'statn' is not being run; did you mean 'statnn'"):
        parse_overrides(["statn.lr=1"], ["statnn"])
    with pytest.raises(SuiteError, match="KEY=VALUE"):
        parse_overrides(["lr"], ["statnn"])
    suite = load_suite("ci", ROOT / "benchmark.toml")
    assert method_budget(suite, "sne", {"max_steps": 5})["max_steps"] == 5


def test_the_spec_constants_match_the_store_and_splits():
    from zoo_bench.splits import EPOCHS as SPLIT_EPOCHS
    from zoo_bench.store import PROPERTIES as STORE_PROPERTIES

    # the spec's PROPERTIES are suggestions: every classifier zoo's columns, all known to the
    # store (which also lists other zoos' properties); a suite may name any numeric column
    assert set(PROPERTIES) <= set(STORE_PROPERTIES) and EPOCHS == SPLIT_EPOCHS


def test_a_suite_lists_several_presets_and_any_property_name(tmp_path):
    path = write(tmp_path, MINE + """
        [generate.other]
        datasets = ["digits", "shapes"]
        families = ["vit"]
        runs = 8
        family_runs = { vit = 5 }
        epochs = 3
        checkpoints = [1]

        [suites.both]
        zoos = ["generate:mine", "generate:other"]
        tasks = ["cross_arch"]
        methods = ["statnn"]
        seeds = [0]
        property = "frequency"
        targets_only = ["vit"]
        """)
    suite = load_spec("both", path)  # pure data: no registry knows family "vit" here
    assert suite.zoos == ("generate:mine", "generate:other")
    assert suite.preset_names == ("mine", "other")
    assert suite.preset is None and suite.generate is None  # no single preset
    assert suite.zoo_names() == ["mine-digits-ctc", "other-digits-vit", "other-shapes-vit"]
    assert suite.expected_infos()["other-shapes-vit"] == ("shapes", "vit")
    assert suite.expected_networks("vit", "other") == 5 * 3  # checkpoints 0, 1, 3
    assert suite.expected_networks("ctc", "mine") == 16 * 2
    assert suite.property == "frequency"  # checked against the zoos' columns, not here
    assert suite.task_options() == {"targets_only": ("vit",)}
    with_vit = load_spec("both", write(tmp_path, path.read_text().replace(
        'targets_only = ["vit"]', 'pairs_with = ["vit"]'), "with.toml"))
    assert with_vit.pairs_with == ("vit",) and with_vit.task_options() == {"pairs_with": ("vit",)}
    bad = path.read_text().replace('targets_only = ["vit"]', 'targets_only = ["vitt"]')
    with pytest.raises(SuiteError, match=r"targets_only names \['vitt'\], which "
                                         r"\[generate.mine\], \[generate.other\] do not make"):
        load_spec("both", write(tmp_path, bad, "bad.toml"))
    clash = write(tmp_path, """
        [generate.a]
        datasets = ["b-c"]
        families = ["d"]
        runs = 1
        epochs = 1
        checkpoints = [1]
        [generate.a-b]
        datasets = ["c"]
        families = ["d"]
        runs = 1
        epochs = 1
        checkpoints = [1]
        [suites.s]
        zoos = ["generate:a", "generate:a-b"]
        tasks = ["standard"]
        methods = ["statnn"]
        seeds = [0]
        """, "clash.toml")
    with pytest.raises(SuiteError, match="presets 'a' and 'a-b' both make zoo a-b-c-d"):
        load_spec("s", clash)
    single = load_spec("mine", path)
    assert single.preset == "mine" and single.preset_names == ("mine",)
    assert single.generate == single.generates["mine"]


def test_one_registry_for_every_kind_with_one_did_you_mean():
    assert {"standard", "cross_dataset", "cross_arch", "nfn"} <= set(TASKS.names())
    assert {"ctc", "schurholt"} <= set(IMPORTERS.names())
    assert {"ctc", "cnn_small", "mixed"} <= set(FAMILIES.names())
    assert {"digits", "mnist1d", "shapes"} <= set(DATASETS.names())
    assert "statnn" in PREDICTORS.names()
    for registry, typo, right in [(TASKS, "standart", "standard"), (IMPORTERS, "ctcc", "ctc"),
                                  (FAMILIES, "mixd", "mixed"), (DATASETS, "mnist1", "mnist1d"),
                                  (PREDICTORS, "statn", "statnn")]:
        with pytest.raises(RegistryError, match=f"; did you mean '{right}'.*Known"):
            registry.get(typo)
    assert did_you_mean("zzz", ["a"]) == "."


PLUGIN = '''
import numpy as np

from zoo_bench.families import ctc
from zoo_bench.generate import Dataset
from zoo_bench.tasks import Standard


class Diagonal(Standard):
    description = "the standard task under another name"


def tiny():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(40, 1, 16, 16)).astype(np.float32)
    y = np.arange(40, dtype=np.int64) % 10
    return Dataset("tiny", x[:30], y[:30], x[30:], y[30:])


def wide_ctc(rng, space, in_channels, size):
    return ctc(in_channels=in_channels, units=24, size=size)
'''


def test_tasks_and_datasets_arrive_from_entry_points(tmp_path, monkeypatch):
    (tmp_path / "zb_demo_kinds.py").write_text(PLUGIN)
    info = tmp_path / "zb_demo_kinds-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zb-demo-kinds\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[zoo_bench.tasks]\ndiagonal = zb_demo_kinds:Diagonal\n"
        "[zoo_bench.datasets]\ntiny = zb_demo_kinds:tiny\n"
        "[zoo_bench.families]\nwide_ctc = zb_demo_kinds:wide_ctc\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from zoo_bench.generate import ZooConfig, load_dataset
    from zoo_bench.generate.hyper import SearchSpace, sample_run
    from zoo_bench.tasks import get_task

    try:
        for registry in (TASKS, DATASETS, FAMILIES):
            registry.describe(refresh=True)
        assert get_task("diagonal").name == "diagonal"
        assert "zb-demo-kinds 0.1" in TASKS.describe()["diagonal"].origin
        data = load_dataset("tiny")  # generation reads plug-in datasets by name
        assert data.x_train.shape == (30, 1, 16, 16) and not data.x_train.flags.writeable
        run = sample_run(0, "wide_ctc", "tiny", 0, 1, 16, SearchSpace())
        assert run.arch.layers[0].weight_shape == (24, 1, 3, 3)
        ZooConfig("p-tiny-wide_ctc", "tiny", "wide_ctc", runs=2, epochs=1, checkpoints=(0, 1))
        suite = write(tmp_path, MINE.replace('"digits"', '"tiny"').replace('"ctc"', '"wide_ctc"'))
        assert load_suite("mine", suite).zoo_names() == ["mine-tiny-wide_ctc"]
    finally:
        monkeypatch.undo()
        sys.modules.pop("zb_demo_kinds", None)
        for registry in (TASKS, DATASETS, FAMILIES):
            registry.describe(refresh=True)


LIGHT = """
import sys, types
pkg = types.ModuleType("zoo_bench")  # the package without its __init__ (see the docstring)
pkg.__path__ = [{pkg!r}]
sys.modules["zoo_bench"] = pkg
import importlib
for name in {modules!r}:
    importlib.import_module(name)
from zoo_bench.cli import main
for args in {helps!r}:
    try:
        main(args, standalone_mode=False)
    except SystemExit:
        pass
print(sorted(m for m in ("torch", "matplotlib", "zoo_bench.generate") if m in sys.modules))
"""


def test_results_spec_and_help_import_no_torch():
    """`import zoo_bench.results`, the spec, the registry and every `--help` load no torch (nor
    matplotlib, nor generation). Checked on these modules' own imports: the package's
    `__init__` is bypassed, as it re-exports the torch-based API (lazily, once the top level
    loads on demand)."""
    code = LIGHT.format(
        pkg=str(PACKAGE),
        modules=["zoo_bench.results", "zoo_bench.spec", "zoo_bench.registry",
                 "zoo_bench.leaderboard"],
        helps=[["--help"], ["zoo", "--help"], *([c, "--help"] for c in COMMANDS)],
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1].replace("'", '"')) == []


def test_help_lists_every_command_with_its_own_short_help():
    top = CliRunner().invoke(main, ["--help"])
    assert top.exit_code == 0
    ctx = click.Context(main)
    for name, (_, short) in COMMANDS.items():
        assert main.get_command(ctx, name).get_short_help_str(limit=80) == short
        assert name in top.output
    zoo = main.get_command(ctx, "zoo")
    for name, (_, short) in ZOO_COMMANDS.items():
        assert zoo.get_command(ctx, name).get_short_help_str(limit=80) == short
    assert CliRunner().invoke(main, ["nope"]).exit_code != 0


def test_tasks_and_run_take_the_same_suite_file_option(tmp_path):
    path = write(tmp_path, MINE)
    out = CliRunner().invoke(main, ["tasks", "--suite-file", str(path)])
    assert out.exit_code == 0, out.output
    assert "mine-digits-ctc" in out.output and "32" in out.output  # its planned size
    bad = write(tmp_path, MINE.replace("max_epochs = 7", "max_epoch = 7"), "bad.toml")
    run = CliRunner().invoke(main, ["run", "--suite-file", str(bad), "--results",
                                    str(tmp_path / "r")])
    assert run.exit_code != 0 and "did you mean 'max_epochs'" in run.output
    assert not (tmp_path / "r").exists()  # failed at load, before any work
    unknown = CliRunner().invoke(main, ["run", "--suite-file", str(path), "--set", "lrr=1",
                                        "--results", str(tmp_path / "r")])
    assert unknown.exit_code != 0 and "did you mean 'lr'" in unknown.output
