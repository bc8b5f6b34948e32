"""The predictor contract, its registry (decorator and entry points) and the training machinery."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import zoo_bench
from zoo_bench import Budget, FitContext, Predictor, get_predictor, register_predictor
from zoo_bench import predictor as registry
from zoo_bench.cli import main
from zoo_bench.errors import RegistryError
from zoo_bench.predictor import PredictorError, available_predictors, describe_predictors
from zoo_bench.training import (
    Batch,
    Standardizer,
    TorchPredictor,
    minibatches,
    resolve_device,
    train_model,
)


class MeanAbs(Predictor):
    """Predicts the mean absolute weight: a minimal complete predictor."""

    defaults = {"scale": 1.0}

    def fit(self, train, val, target, ctx):
        self.sign = 1.0

    def predict(self, zoo):
        return [self._hparams["scale"] * float(np.abs(zoo.flat(i)).mean()) for i in range(len(zoo))]


@pytest.fixture
def clean_registry(monkeypatch):
    """Decorator registrations made by a test vanish after it."""
    monkeypatch.setattr(registry.PREDICTORS, "_code", dict(registry.PREDICTORS._code))


# --- the base class ------------------------------------------------------------------------

def test_hparams_merge_defaults_and_reject_unknown_names():
    assert MeanAbs().hparams() == {"scale": 1.0}
    assert MeanAbs(scale=2).hparams() == {"scale": 2}
    with pytest.raises(PredictorError, match="no hyperparameter 'scael'.*known.*: scale"):
        MeanAbs(scael=2.0)
    with pytest.raises(PredictorError, match="'scale' must be float"):
        MeanAbs(scale="big")


def test_predict_before_fit_is_a_clear_error(make_zoo):
    zoo = make_zoo()
    p = MeanAbs()
    assert not p.fitted
    with pytest.raises(PredictorError, match="not fitted: call fit"):
        p.predict(zoo)
    p.fit(zoo, zoo, "test_accuracy", FitContext())
    assert p.fitted
    pred = p.predict(zoo)
    assert pred.dtype == np.float64 and pred.shape == (len(zoo),)
    assert p.n_parameters() == 0


def test_fit_checks_its_inputs(make_zoo):
    zoo = make_zoo()
    with pytest.raises(PredictorError, match="target 'accuracy' is not a column.*test_accuracy"):
        MeanAbs().fit(zoo, zoo, "accuracy", FitContext())
    with pytest.raises(PredictorError, match="ctx must be a FitContext"):
        MeanAbs().fit(zoo, zoo, "test_accuracy", {"seed": 0})
    with pytest.raises(PredictorError, match="training zoo is empty"):
        MeanAbs().fit(zoo.subset([]), zoo, "test_accuracy", FitContext())


def test_predictions_must_be_one_per_network(make_zoo):
    class Short(MeanAbs):
        def predict(self, zoo):
            return np.zeros(len(zoo) - 1)

    zoo = make_zoo()
    p = Short()
    p.fit(zoo, zoo, "test_accuracy", FitContext())
    with pytest.raises(PredictorError, match=r"one float per row of zoo.table, shape \(12,\)"):
        p.predict(zoo)


def test_unsupported_architecture_is_refused_at_fit(make_zoo):
    class NoCtc(MeanAbs):
        supports_note = "linear-only networks"

        def supports(self, arch):
            return arch.name != "ctc"

    zoo = make_zoo()
    assert not NoCtc().supports(zoo.architectures["ctc"])
    with pytest.raises(PredictorError, match=r"does not support architectures \['ctc'\]"):
        NoCtc().fit(zoo, zoo, "test_accuracy", FitContext())


def test_fit_context_validates():
    assert FitContext().device == "auto"
    with pytest.raises(PredictorError, match="device 'gpu'"):
        FitContext(device="gpu")
    with pytest.raises(PredictorError, match="max_epochs"):
        Budget(max_epochs=0)
    with pytest.raises(PredictorError, match="max_seconds"):
        Budget(max_seconds=-1.0)


# --- registry: decorator -------------------------------------------------------------------

def test_register_predictor_sets_name_and_is_found(clean_registry):
    @register_predictor("mean-abs")
    class Registered(MeanAbs):
        pass

    assert Registered.name == "mean-abs"
    assert get_predictor("mean-abs") is Registered
    assert available_predictors()["mean-abs"] is Registered
    assert "decorator" in describe_predictors()["mean-abs"].origin


def test_register_predictor_checks_base_class_and_duplicates(clean_registry):
    with pytest.raises(RegistryError, match="needs a subclass of zoo_bench.Predictor"):
        register_predictor("plain")(dict)

    @register_predictor("dup")
    class First(MeanAbs):
        pass

    with pytest.raises(RegistryError, match="'dup' is already registered by .*First"):
        @register_predictor("dup")
        class Second(MeanAbs):
            pass

    with pytest.raises(RegistryError, match="lower-case letters"):
        register_predictor("Has Space")


def test_typo_gets_did_you_mean_and_known_names():
    with pytest.raises(RegistryError, match=r"unknown predictor 'statn'; did you mean 'statnn'\?"
                       r".*Known predictors: .*deepsets.*mlp.*statnn"):
        get_predictor("statn")


# --- registry: entry points ------------------------------------------------------------------

PLUGIN = '''
import numpy as np
from zoo_bench import Predictor


class Constant(Predictor):
    defaults = {"value": 0.5}

    def fit(self, train, val, target, ctx):
        pass

    def predict(self, zoo):
        return np.full(len(zoo), self._hparams["value"])


NotAPredictor = object
'''


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A real distribution `zb-demo-plugin` on sys.path declaring three entry points."""
    (tmp_path / "zb_demo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "zb_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zb-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [zoo_bench.predictors]
        demo-constant = zb_demo_plugin:Constant
        demo-missing = zb_demo_missing_module:Thing
        demo-wrong = zb_demo_plugin:NotAPredictor
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    monkeypatch.undo()
    sys.modules.pop("zb_demo_plugin", None)
    available_predictors(refresh=True)


def test_entry_point_plugin_is_discovered_and_loaded(installed_plugin, make_zoo):
    found = available_predictors(refresh=True)
    cls = found["demo-constant"]
    assert cls.__module__ == "zb_demo_plugin" and cls.name == "demo-constant"
    assert "zb-demo-plugin 0.1" in describe_predictors()["demo-constant"].origin
    zoo = make_zoo()
    p = get_predictor("demo-constant")(value=0.25)
    p.fit(zoo, zoo, "test_accuracy", FitContext())
    assert np.all(p.predict(zoo) == 0.25)


def test_broken_entry_points_are_reported_not_fatal(installed_plugin):
    found = available_predictors(refresh=True)
    assert "demo-missing" not in found and "demo-wrong" not in found
    assert "statnn" in found
    with pytest.raises(RegistryError, match="demo-missing.*zb-demo-plugin.*import failed"):
        get_predictor("demo-missing")
    with pytest.raises(RegistryError, match="not a zoo_bench.Predictor subclass"):
        get_predictor("demo-wrong")
    out = CliRunner().invoke(main, ["methods", "--json"])
    assert out.exit_code == 0, out.output
    assert '"name": "demo-missing"' in out.output and "import failed" in out.output


def test_baselines_arrive_through_entry_points_alone():
    """In a fresh interpreter nothing imports `baselines`: the names come from the metadata."""
    code = (
        "import sys, zoo_bench\n"
        "assert 'baselines' not in sys.modules\n"
        "cls = zoo_bench.get_predictor('statnn')\n"
        "print(cls.__module__, cls.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["baselines.statnn", "statnn"]


def test_methods_command_lists_the_baselines():
    out = CliRunner().invoke(main, ["methods"])
    assert out.exit_code == 0, out.output
    for name in ("statnn", "deepsets", "mlp", "StatNN", "FlatMLP"):
        assert name in out.output


def test_public_api_is_exported():
    assert zoo_bench.Predictor is Predictor and zoo_bench.register_predictor is register_predictor


# --- training machinery --------------------------------------------------------------------

def test_minibatches_hold_one_architecture_and_cover_every_position(make_zoo):
    zoo = make_zoo(runs=10)
    batches = list(minibatches(zoo, np.arange(len(zoo)), 6, np.random.default_rng(0)))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(zoo)))
    assert all(len(set(zoo.table["architecture"].iloc[b])) == 1 for b in batches)
    again = list(minibatches(zoo, np.arange(len(zoo)), 6, np.random.default_rng(0)))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))


def test_standardizer_ignores_nan_and_inverts():
    s = Standardizer(np.array([[1.0, np.nan], [3.0, np.nan]]))
    assert s.transform(np.array([[2.0, 5.0]])).tolist() == [[0.0, 5.0]]
    t = Standardizer(np.array([1.0, 2.0, 6.0]))
    assert np.allclose(t.inverse(t.transform(np.array([4.0]))), [4.0])


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(PredictorError, match="no CUDA GPU; use device='cpu'"):
        resolve_device("cuda")


class NormRegressor(TorchPredictor):
    """A linear model of per-layer weight norms, with an optional L1 loss hook."""

    defaults = {**TorchPredictor.defaults, "l1": 0.0}

    def build_model(self, train):
        everyone = Batch(train, np.arange(len(train)), torch.device("cpu"))
        self.scaler_in = Standardizer(self.norms(everyone))
        return nn.Linear(len(train.architectures["ctc"].layers), 1)

    def norms(self, batch: Batch):
        return torch.stack([w.flatten(1).norm(dim=1) for w, _ in batch.params()], dim=1)

    def forward(self, batch: Batch):
        return self.model(self.scaler_in.transform(self.norms(batch))).squeeze(-1)

    def loss_hook(self, model, batch, pred):
        return self._hparams["l1"] * model.weight.abs().sum()


def _norm_zoo(make_zoo):
    """A toy zoo whose target is a function of the first layer's weight norm."""
    zoo = make_zoo(runs=40, epochs=(0,))
    first = np.array([np.linalg.norm(zoo.flat(i)[:144]) for i in range(len(zoo))])
    zoo.table["test_accuracy"] = first
    return zoo


def test_torch_predictor_learns_is_deterministic_and_respects_budget(make_zoo):
    zoo = _norm_zoo(make_zoo)
    train, val = zoo.subset(np.arange(30)), zoo.subset(np.arange(30, 40))
    ctx = FitContext(seed=3, device="cpu", budget=Budget(max_epochs=40))
    a, b = NormRegressor(lr=0.05), NormRegressor(lr=0.05)
    a.fit(train, val, "test_accuracy", ctx)
    b.fit(train, val, "test_accuracy", ctx)
    assert np.array_equal(a.predict(val), b.predict(val))
    assert a.train_result.epochs <= 40 and a.train_result.best_val_tau > 0.8
    assert a.n_parameters() == 5
    c = NormRegressor(lr=0.05)
    c.fit(train, val, "test_accuracy", FitContext(seed=4, device="cpu", budget=ctx.budget))
    assert not np.array_equal(a.predict(val), c.predict(val))
    one = NormRegressor()
    one.fit(train, val, "test_accuracy", FitContext(device="cpu", budget=Budget(max_epochs=1)))
    assert one.train_result.epochs == 1 and one.train_result.stopped_by == "max_epochs"


def test_loss_hook_is_added_to_the_loss(make_zoo):
    zoo = _norm_zoo(make_zoo)
    train, val = zoo.subset(np.arange(30)), zoo.subset(np.arange(30, 40))
    ctx = FitContext(seed=0, device="cpu", budget=Budget(max_epochs=30))
    free, shrunk = NormRegressor(lr=0.05), NormRegressor(lr=0.05, l1=10.0)
    free.fit(train, val, "test_accuracy", ctx)
    shrunk.fit(train, val, "test_accuracy", ctx)
    assert shrunk.model.weight.abs().sum() < 0.5 * free.model.weight.abs().sum()


def test_train_model_stops_on_wall_clock_budget(make_zoo):
    zoo = _norm_zoo(make_zoo)
    model = nn.Linear(4970, 1)

    def forward(batch):
        return model(batch.flat()).squeeze(-1)

    ctx = FitContext(seed=0, device="cpu", budget=Budget(max_epochs=10_000, max_seconds=1e-3))
    result, _ = train_model(model, forward, zoo, zoo, "test_accuracy", ctx)
    assert result.stopped_by == "max_seconds" and result.epochs == 1


def test_progress_bar_runs_without_a_terminal(make_zoo, capsys):
    zoo = _norm_zoo(make_zoo)
    p = NormRegressor()
    ctx = FitContext(seed=0, device="cpu", budget=Budget(max_epochs=2), progress=True)
    p.fit(zoo.subset(np.arange(30)), zoo.subset(np.arange(30, 40)), "test_accuracy", ctx)
    assert p.train_result.epochs == 2 and len(p.train_result.history) == 2


# --- model selection: warm-up floor and the spread rule ---------------------------------------


class Scripted(nn.Module):
    """A stand-in for a model on a plateau: for its first `plateau` training steps it outputs
    `amp` x target (a perfect ranking), afterwards target + `noise` x fixed noise. The target
    is the oracle, so ranking quality is under the test's control; `w` only gives the optimiser
    a parameter."""

    def __init__(self, plateau: int, amp: float, noise: float):
        super().__init__()
        self.plateau, self.amp, self.noise = plateau, amp, noise
        self.w = nn.Parameter(torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.training:
            self.steps += 1
        pos = np.asarray(batch.positions)
        y = torch.from_numpy(batch.zoo.targets("test_accuracy", pos)).float()
        eps = torch.from_numpy(np.random.default_rng(7).normal(size=len(batch.zoo))[pos]).float()
        y = (y - 0.5) * 4  # roughly standardised units
        out = self.amp * y if int(self.steps) <= self.plateau else y + self.noise * eps
        return out + 0.0 * self.w


@pytest.fixture
def split(make_zoo):
    zoo = make_zoo(runs=40, epochs=(0,))
    return zoo.subset(np.arange(30)), zoo.subset(np.arange(30, 40))


def _fit_scripted(split, model: Scripted, **config):
    from zoo_bench.training import TrainConfig

    train, val = split
    cfg = TrainConfig(batch_size=8, **config)  # 4 steps per epoch
    ctx = FitContext(seed=0, device="cpu")
    result, scaler = train_model(model, model, train, val, "test_accuracy", ctx, cfg)
    pred = predict_val(model, val)
    return result, pred, val.targets("test_accuracy")


def predict_val(model: nn.Module, val) -> np.ndarray:
    from zoo_bench.training import predict_model

    return predict_model(model, model, val, torch.device("cpu"))


def test_a_near_constant_checkpoint_is_never_selected_even_with_the_best_tau(split):
    # steps 1-8 (epochs 1-2): 1e-4 x (a perfect ranking): val tau 1.0 from a constant predictor;
    # then a noisy but spread-out ranking (val tau below 1)
    result, pred, y = _fit_scripted(split, Scripted(plateau=8, amp=1e-4, noise=2.0),
                                    max_epochs=10, patience=100, min_steps=0)
    taus = [h["val_tau"] for h in result.history]
    assert taus[0] > max(taus[2:])  # the plateau epochs rank best ...
    assert result.best_epoch > 2  # ... and are still not kept
    assert result.history[0]["val_spread"] < 1e-3 and np.std(pred) >= 0.2 * np.std(y)
    assert result.history[result.best_epoch - 1]["val_spread"] >= 0.2
    assert not result.degenerate
    # the old rule (min_spread 0) keeps the plateau's first epoch
    old, _, _ = _fit_scripted(split, Scripted(plateau=8, amp=1e-4, noise=2.0),
                              max_epochs=10, patience=100, min_steps=0, min_spread=0.0)
    assert old.best_epoch == 1


def test_patience_cannot_stop_a_fit_before_the_warm_up_floor(split):
    # a flat score from step 1: patience 1 stops after epoch 2 without a floor, not before the
    # 50th step with one
    free, _, _ = _fit_scripted(split, Scripted(plateau=0, amp=1.0, noise=1.0),
                               max_epochs=30, patience=1, min_steps=0)
    floored, _, _ = _fit_scripted(split, Scripted(plateau=0, amp=1.0, noise=1.0),
                                  max_epochs=30, patience=1, min_steps=50)
    assert free.stopped_by == "patience" and free.epochs == 2
    assert floored.stopped_by == "patience" and floored.steps >= 50 and floored.epochs == 13


def test_patience_waits_for_a_first_selectable_state(split):
    # a plateau longer than patience: nothing is selectable for 40 steps, so patience (2 epochs)
    # may not fire on the plateau; the fit ends on a spread-out state
    result, pred, y = _fit_scripted(split, Scripted(plateau=40, amp=1e-4, noise=1.0),
                                    max_epochs=30, patience=2, min_steps=0)
    assert result.best_epoch > 10 and result.stopped_by == "patience"
    assert np.std(pred) >= 0.2 * np.std(y)


def test_no_selectable_state_keeps_the_last_one_and_says_so(split, caplog):
    with caplog.at_level(logging.WARNING, logger="zoo_bench.training"):
        result, _, _ = _fit_scripted(split, Scripted(plateau=10**6, amp=1e-4, noise=1.0),
                                     max_epochs=5, patience=1, min_steps=0)
    assert "spread" in caplog.text
    assert result.degenerate and result.best_epoch == 5 and result.stopped_by == "max_epochs"
