"""The public API: top-level names load lazily, plug-ins import nothing else, and the
applicability contract (`supports` before fit, `can_predict` after) reaches the runner."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo_bench
from zoo_bench import (
    Evaluator,
    Predictor,
    PredictorError,
    Zoo,
    ZooWriter,
    ctc,
    mixed,
    register_predictor,
)
from zoo_bench.results import read_cells
from zoo_bench.runner import plan_jobs, run_jobs

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGES = ("baselines", "sne")


def test_every_public_name_resolves_and_is_listed():
    for name in zoo_bench.__all__:
        assert getattr(zoo_bench, name) is not None, name
    assert set(zoo_bench.__all__) <= set(dir(zoo_bench))
    for name in ("Predictor", "TorchPredictor", "Batch", "usable_positions", "PredictorError",
                 "Zoo", "ZooWriter", "Architecture", "LayerSpec", "Budget", "FitContext",
                 "TrainResult", "ctc", "cnn_s", "register_predictor", "get_predictor",
                 "Evaluator", "Symmetry"):
        assert name in zoo_bench.__all__, name
    with pytest.raises(AttributeError, match="no attribute 'Predictr'"):
        zoo_bench.Predictr  # noqa: B018


@pytest.mark.parametrize("module", ["zoo_bench", "zoo_bench.results", "zoo_bench.symmetry"])
def test_light_imports_load_no_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _plugin_files() -> list[Path]:
    files = [p for pkg in PLUGIN_PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))]
    assert len(files) > 5
    return files


@pytest.mark.parametrize("path", _plugin_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_built_in_methods_use_only_the_public_api(path):
    """baselines/ and sne/ import only top-level zoo_bench names, never each other, and read
    hyperparameters through `hparams()`."""
    own = path.parent.name
    tree = ast.parse(path.read_text(), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or ""]
            if node.module == "zoo_bench":
                private = [a.name for a in node.names if a.name not in zoo_bench.__all__]
                problems += [f"line {node.lineno}: zoo_bench has no public {n!r}" for n in private]
        elif isinstance(node, ast.Attribute) and node.attr == "_hparams":
            problems.append(f"line {node.lineno}: reads _hparams; use self.hparams()")
            continue
        else:
            continue
        for mod in mods:
            top = mod.split(".")[0]
            if top == "zoo_bench" and mod != "zoo_bench":
                problems.append(f"line {node.lineno}: imports {mod}; use top-level zoo_bench names")
            if top in PLUGIN_PACKAGES and top != own:
                problems.append(f"line {node.lineno}: {own} imports the method package {mod}")
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)


# --- applicability after fit ---------------------------------------------------------------

@register_predictor("api-fixed-depth")
class FixedDepth(Predictor):
    """Trains on any architecture, but the fitted model reads only the depth it was fitted on
    (like an encoder with one weight matrix per layer)."""

    def fit(self, train, val, target, ctx):
        self.depths = {len(train.architectures[a].layers) for a in train.arch_groups()}

    def can_predict(self, arch):
        return self.fitted and len(arch.layers) in self.depths

    def predict(self, zoo):
        return np.array([float(np.mean(np.abs(zoo.flat(i)))) for i in range(len(zoo))])


@pytest.fixture
def two_depths(tmp_path, monkeypatch):
    """A ctc zoo (4 layers) and a mixed zoo (3 layers) on the same dataset."""
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(0)
    zoos = {}
    for arch, name in ((ctc(size=16), "toy-d1-ctc"), (mixed(2, 6), "toy-d1-mixed")):
        with ZooWriter(tmp_path / name, name, [arch], {"kind": "test"}) as w:
            rows = [dict(run_id=f"r{i}", dataset="d1", epoch=0, hp_activation="relu",
                         test_accuracy=float(rng.uniform()), train_accuracy=0.5,
                         test_loss=1.0, train_loss=1.0) for i in range(30)]
            w.add_many(arch.name, rng.normal(0, 0.3, (30, arch.n_params)).astype(np.float32), rows)
        zoos[name] = Zoo.open(tmp_path / name)
    return zoos


def test_can_predict_defaults_to_supports():
    class Picky(Predictor):
        def supports(self, arch):
            return arch.family == "ctc"

        def fit(self, train, val, target, ctx): ...

        def predict(self, zoo):
            return np.zeros(len(zoo))

    assert Picky().can_predict(ctc()) and not Picky().can_predict(mixed(2, 4))


def test_predict_refuses_an_architecture_the_fitted_model_cannot_read(two_depths):
    from zoo_bench import FitContext

    ctc_zoo, mixed_zoo = two_depths["toy-d1-ctc"], two_depths["toy-d1-mixed"]
    method = FixedDepth()
    method.fit(ctc_zoo, ctc_zoo, "test_accuracy", FitContext())
    assert method.supports(mixed_zoo.architecture_of(0))  # trainable on it ...
    assert not method.can_predict(mixed_zoo.architecture_of(0))  # ... but not readable now
    assert method.predict(ctc_zoo).shape == (30,)
    with pytest.raises(PredictorError, match=r"cannot read architectures \['mixed_d2_w6'\]"):
        method.predict(mixed_zoo)


def test_the_runner_stores_unreadable_targets_as_not_applicable(two_depths, tmp_path):
    jobs = plan_jobs(two_depths, ["api-fixed-depth"], ["cross_arch"], [0],
                     "test_accuracy")
    report = run_jobs(jobs, tmp_path / "results", device="cpu", progress=False,
                      evaluator=Evaluator(n_boot=20))
    rows = read_cells(tmp_path / "results").set_index(["source", "target"])["status"]
    assert rows[("toy-d1-ctc", "toy-d1-ctc")] == "ok"
    assert rows[("toy-d1-mixed", "toy-d1-mixed")] == "ok"
    assert rows[("toy-d1-ctc", "toy-d1-mixed")] == "not_applicable"
    assert rows[("toy-d1-mixed", "toy-d1-ctc")] == "not_applicable"
    assert len(report.not_applicable) == 2 and not report.errors
