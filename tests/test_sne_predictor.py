"""SNEPredictor as a zoo-bench plug-in: registration, fit/predict, determinism, switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo_bench
from sne.predictor import SNEPredictor
from sne.stats import SNEStatsPredictor
from zoo_bench import Zoo, ZooWriter
from zoo_bench.evaluator import kendall_tau
from zoo_bench.families import cnn_s, ctc
from zoo_bench.predictor import FitContext, PredictorError, get_predictor
from zoo_bench.training import Batch

FAST = {"max_epochs": 2, "batch_size": 8}
CPU = FitContext(seed=3, device="cpu")


@pytest.fixture
def mixed_zoo(tmp_path) -> Zoo:
    """Random ctc (relu) and cnn_s (tanh) networks in one zoo."""
    rng = np.random.default_rng(0)
    archs = {"relu": ctc(size=16), "tanh": cnn_s()}
    with ZooWriter(tmp_path / "mixed", "mixed", archs.values(), {"kind": "test"}) as w:
        for act, arch in archs.items():
            flats = rng.normal(0, 0.3, size=(6, arch.n_params)).astype(np.float32)
            rows = [dict(run_id=f"{act}{i}", dataset="toy", epoch=0, hp_activation=act,
                         test_accuracy=float(rng.uniform()), train_accuracy=0.5,
                         test_loss=1.0, train_loss=1.0) for i in range(6)]
            w.add_many(arch.name, flats, rows)
    return Zoo.open(tmp_path / "mixed")


def test_sne_and_sne_stats_are_registered_through_their_entry_points():
    assert get_predictor("sne") is SNEPredictor
    assert get_predictor("sne_stats") is SNEStatsPredictor


def test_sne_stats_gives_the_head_the_cores_statistics_beside_the_set_encoding(mixed_zoo):
    p = SNEStatsPredictor(**FAST)
    p.fit(mixed_zoo, mixed_zoo, "test_accuracy", CPU)
    pred = p.predict(mixed_zoo)
    assert pred.shape == (12,) and np.isfinite(pred).all()
    assert p.model.head[0].in_features == 2 * p.config.dim
    assert not hasattr(p.model.encoder, "head")  # the encoder ends at the network vector
    # per batch, from the weights themselves: the same numbers as the core's per-zoo features
    for group in mixed_zoo.arch_groups().values():
        arch = mixed_zoo.architecture_of(int(group[0]))
        flats = torch.from_numpy(mixed_zoo.flat_batch(group))
        torch.testing.assert_close(zoo_bench.network_statistics(arch, flats).numpy(),
                                   zoo_bench.statnn_features(mixed_zoo, group))
    # the statistics reach the prediction: zeroing their embedding changes it
    before = p.predict(mixed_zoo)
    with torch.no_grad():
        p.model.stats[0].weight.zero_()
        p.model.stats[0].bias.zero_()
    assert not np.allclose(p.predict(mixed_zoo), before)


def test_same_seed_same_predictions_different_seed_different(make_zoo):
    zoo = make_zoo(runs=6)
    train, val = zoo.subset(np.arange(8)), zoo.subset(np.arange(8, 12))
    preds = []
    for seed in (3, 3, 4):
        p = SNEPredictor(**FAST)
        p.fit(train, val, "test_accuracy", FitContext(seed=seed, device="cpu"))
        preds.append(p.predict(zoo))
    assert preds[0].shape == (12,) and np.isfinite(preds[0]).all()
    np.testing.assert_array_equal(preds[0], preds[1])
    assert not np.allclose(preds[0], preds[2])


def test_one_encoder_fits_and_predicts_a_zoo_of_mixed_architectures(mixed_zoo):
    p = SNEPredictor(**FAST)
    assert all(p.supports(a) for a in mixed_zoo.architectures.values())
    p.fit(mixed_zoo, mixed_zoo, "test_accuracy", CPU)
    pred = p.predict(mixed_zoo)
    assert pred.shape == (12,) and np.isfinite(pred).all()
    assert p.n_parameters() == sum(t.numel() for t in p.model.parameters())


@pytest.mark.parametrize("cls", [SNEPredictor, SNEStatsPredictor])
def test_a_step_budget_counts_the_batches_of_a_mixed_zoo(mixed_zoo, cls):
    """Batches hold one architecture: 6 + 6 networks at batch 4 are 4 steps an epoch, not 3."""
    p = cls(max_steps=8, patience_steps=8, min_steps=0, batch_size=4)
    p.fit(mixed_zoo, mixed_zoo, "test_accuracy", CPU)
    assert p.train_result.epochs == 2 and p.train_result.steps == 8


def test_logit_invariance_penalises_the_logit_change_under_a_symmetry(mixed_zoo):
    on, off = SNEPredictor(**FAST, logit_invariance=0.5), SNEPredictor(**FAST, logit_invariance=0)
    for p in (on, off):
        p.fit(mixed_zoo, mixed_zoo, "test_accuracy", CPU)
    for group in mixed_zoo.arch_groups().values():  # tanh cnn_s: permutations and sign flips
        batch = Batch(mixed_zoo, group, torch.device("cpu"), training=True)
        pred = on.forward(batch)
        penalty = on.loss_hook(on.model, batch, pred)
        assert float(penalty.detach()) > 0
        penalty.backward()
        assert on.model.lift_in.weight.grad.abs().sum() > 0
        assert float(off.loss_hook(off.model, batch, off.forward(batch))) == 0.0


def one_sided_permutation(arch, flats: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """Units of `layer` permuted (their weights and biases) without the next layer's inputs:
    not a symmetry (tests/test_sne_symmetry.py shows the network's function changes)."""
    params = [[w.clone(), b.clone()] for w, b in arch.unflatten(flats)]
    perm = torch.roll(torch.arange(arch.layers[layer].fan_out), 1)
    params[layer][0], params[layer][1] = params[layer][0][:, perm], params[layer][1][:, perm]
    return arch.flatten([tuple(p) for p in params])


@pytest.mark.parametrize("cls", [SNEPredictor, SNEStatsPredictor], ids=["sne", "sne_stats"])
@pytest.mark.parametrize("train_chunks", [3, 0], ids=["subsampled", "all-chunks"])
def test_logit_invariance_sees_the_transformation_not_chunk_sampling(mixed_zoo, train_chunks,
                                                                     cls):
    """g = identity gives a zero penalty in training mode, chunk subsampling included (the
    penalty compares full encodings); a perturbation that is not a symmetry does not. In float64,
    so that "zero" (rounding, below 1e-32 here) and "non-zero" (a barely trained model's logits
    move by 1e-7 to 1e-5 under a one-sided permutation: penalties 1e-15 to 1e-10) are many
    orders of magnitude apart."""
    p = cls(max_epochs=1, logit_invariance=1.0, li_batch=4, train_chunks=train_chunks)
    p.fit(mixed_zoo, mixed_zoo, "test_accuracy", CPU)
    model = p.model.double().train()
    for group in mixed_zoo.arch_groups().values():
        scale = torch.linspace(0.5, 2.0, len(group), dtype=torch.float64)[:, None]
        flats = scale * torch.from_numpy(mixed_zoo.flat_batch(group)).double()
        batch = Batch(mixed_zoo, group, torch.device("cpu"), training=True, _flat=flats)
        assert model.subsamples(batch.arch) == bool(train_chunks)
        pred = p.forward(batch)
        same = float(p.invariance_penalty(model, batch, pred, flats[:4].clone()).detach())
        broken = one_sided_permutation(batch.arch, flats[:4])
        penalty = float(p.invariance_penalty(model, batch, pred, broken).detach())
        assert same < 1e-28
        assert penalty > 1e-20


def test_every_switch_is_a_hyperparameter_and_shapes_the_model():
    p = SNEPredictor(logit_invariance=0.0, positional=False, hierarchy=False, chunk_size=16,
                     chunk_budget=64)
    h = p.hparams()
    assert (h["logit_invariance"], h["positional"], h["hierarchy"], h["chunk_size"]) == (
        0.0, False, False, 16)
    assert p.config.chunk_budget == 64 and not p.config.hierarchy
    assert SNEPredictor(log_features=False).config.log_features is False
    assert SNEPredictor().config.log_features is True
    with pytest.raises(PredictorError, match="chunk_block"):
        SNEPredictor(chunk_block="mlp")
    with pytest.raises(PredictorError, match="logit_invariance"):
        SNEPredictor(logit_invariance=-1.0)
    with pytest.raises(PredictorError, match="no hyperparameter"):
        SNEPredictor(chunk=8)


@pytest.fixture(scope="module")
def ci_digits_ctc(ci_zoos) -> Zoo:
    return ci_zoos["ci-digits-ctc"]


@pytest.mark.slow
def test_sne_ranks_ci_test_networks_better_than_trivial_weight_statistics(
    ci_digits_ctc, tmp_path, trivial_tau
):
    """Standard task on ci-digits-ctc, every checkpoint (57 train / 18 test networks), three
    seeds, the ci suite's SNE budget: SNE's mean test Kendall's tau must beat the better of mean
    |w| and the L2 norm (sign chosen on train) on the same cells."""
    from zoo_bench.runner import make_predictor
    from zoo_bench.suite import load_suite
    from zoo_bench.tasks import get_task

    table = load_suite("ci").budget("sne")
    cells, taus = [], []
    for seed in (0, 1, 2):
        cell = get_task("standard").cells(
            {"ci-digits-ctc": ci_digits_ctc}, seed, epochs="all", split_root=tmp_path
        )[0]
        p, budget = make_predictor("sne", table)
        p.fit(cell.train, cell.val, "test_accuracy",
              FitContext(seed=seed, device="cpu", budget=budget))
        taus.append(kendall_tau(cell.test.targets("test_accuracy"), p.predict(cell.test)))
        cells.append(cell)
    bar = trivial_tau(cells)
    assert np.mean(taus) > bar, (taus, bar)
