"""The population trainer: its fused forward is functional_forward, its step is torch.optim's,
dropout keeps the right fraction per network, and one diverging network harms no other."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from zoo_bench.arch import ZooNetwork, functional_forward
from zoo_bench.families import cnn_small, ctc, mixed
from zoo_bench.generate.datasets import load_dataset
from zoo_bench.generate.hyper import RunSpec, sample_runs
from zoo_bench.generate.trainer import (
    Population,
    PopulationOptimizer,
    accuracy,
    init_flat,
    network_logits,
    run_start,
    train_group,
)

ARCHS = [ctc(size=16), cnn_small(), mixed(3, 8)]


def make_runs(arch, n=4, **fixed) -> list[RunSpec]:
    runs = [dataclasses.replace(r, arch=arch) for r in sample_runs(n, "ctc", "digits", 7, 1, 16)]
    return [dataclasses.replace(r, index=i, **fixed) for i, r in enumerate(runs)]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a.name)
def test_fused_forward_matches_functional_forward_per_network(arch):
    runs = make_runs(arch, 4, activation="relu")
    runs[2:] = [dataclasses.replace(r, activation="tanh") for r in runs[2:]]
    flat = torch.stack([init_flat(arch, "glorot_normal", 0.1, torch.Generator().manual_seed(i))
                        for i in range(4)])
    flat += 0.05 * torch.randn(flat.shape, generator=torch.Generator().manual_seed(9))  # biases
    pop = Population(arch, runs, flat)
    x = torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    shared = pop.forward(x, per_network=False)
    own = pop.forward(x.permute(0, 2, 3, 1)[:, None].expand(5, 4, 16, 16, 1), per_network=True)
    for j, r in enumerate(runs):
        want = functional_forward(arch, arch.unflatten(flat[j]), x, r.activation)
        torch.testing.assert_close(shared[j], want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(own[j], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", [ctc(size=16), cnn_small()], ids=lambda a: a.name)
def test_one_step_per_optimizer_matches_torch_optim(arch):
    """SGD, Adam and RMSprop with per-network learning rates: three steps, as torch.optim does."""
    runs = [
        dataclasses.replace(r, optimizer=opt, learning_rate=lr, l2reg=0.0, dropout=0.0)
        for r, (opt, lr) in zip(make_runs(arch, 3), [("sgd", 0.05), ("adam", 0.01),
                                                     ("rmsprop", 0.003)], strict=True)
    ]
    flat = torch.stack([init_flat(arch, "he_normal", 0.0, torch.Generator().manual_seed(i))
                        for i in range(3)]).requires_grad_(True)
    pop = Population(arch, runs, flat)
    opt = PopulationOptimizer(runs, arch, torch.device("cpu"))
    refs = [[t.clone().requires_grad_(True) for wb in arch.unflatten(flat[j].detach()) for t in wb]
            for j in range(3)]
    optims = [torch.optim.SGD(refs[0], lr=0.05), torch.optim.Adam(refs[1], lr=0.01),
              torch.optim.RMSprop(refs[2], lr=0.003)]
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        x = torch.randn(3, 8, 16, 16, 1, generator=gen)  # each network its own batch of 8
        y = torch.randint(0, 10, (3, 8), generator=gen)
        logits = pop.forward(x.transpose(0, 1), per_network=True, training=True)
        loss = F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1), reduction="sum") / 8
        (grad,) = torch.autograd.grad(loss, flat)
        opt.step(flat.data, grad)
        for j, r in enumerate(runs):
            params = list(zip(refs[j][::2], refs[j][1::2], strict=True))
            out = functional_forward(arch, params, x[j].permute(0, 3, 1, 2), r.activation)
            optims[j].zero_grad()
            F.cross_entropy(out, y[j]).backward()
            optims[j].step()
    for j in range(3):
        want = torch.cat([t.detach().reshape(-1) for t in refs[j]])
        torch.testing.assert_close(flat[j].detach(), want, rtol=1e-4, atol=1e-6)


def test_dropout_keeps_each_networks_share_and_rescales():
    arch = ctc(size=16)
    rates = [0.1, 0.5, 0.7]
    runs = [dataclasses.replace(r, dropout=p, activation="relu")
            for r, p in zip(make_runs(arch, 3), rates, strict=True)]
    pop = Population(arch, runs, torch.zeros(3, arch.n_params))
    h = torch.ones(64, 3 * 16, 7, 7).contiguous(memory_format=torch.channels_last)
    out = pop._activate(h, True, 16, True, torch.Generator().manual_seed(0))
    for j, p in enumerate(rates):
        part = out[:, 16 * j : 16 * (j + 1)]
        assert (part > 0).float().mean().item() == pytest.approx(1 - p, abs=0.01)
        assert part.mean().item() == pytest.approx(1.0, abs=0.03)


def test_a_diverging_network_is_kept_flagged_and_harms_no_other():
    data = load_dataset("digits")
    arch = ctc(size=16)
    calm = make_runs(arch, 3, dropout=0.0, optimizer="sgd", learning_rate=0.01,
                     train_fraction=0.1)
    wild = dataclasses.replace(calm[0], index=9, learning_rate=1e9, seed=99)
    together = train_group(arch, [*calm, wild], data, 2, [0, 2], 16, seed=0)
    alone = train_group(arch, calm, data, 2, [0, 2], 16, seed=0)
    assert not np.isfinite(together.flats[-1, 3]).all()
    assert np.isfinite(together.flats[-1, :3]).all()
    np.testing.assert_allclose(together.flats[:, :3], alone.flats, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        together.metrics["test_accuracy"][:, :3], alone.metrics["test_accuracy"], atol=0.01
    )


@pytest.mark.parametrize("family", ["ctc", "cnn_small"])
def test_recorded_accuracies_are_what_each_network_computes_on_its_split(family):
    """Test accuracy on the whole test split, train accuracy on the run's own training subset
    (2,000 examples, scored 1,000 at a time), to the last example."""
    data = load_dataset("mnist1d")
    runs = [r for r in sample_runs(16, family, "mnist1d", 0, 1, 16) if r.train_fraction == 0.5]
    arch = runs[0].arch
    res = train_group(arch, runs, data, 1, [0, 1], 16, seed=0)
    x, y = torch.tensor(data.x_test), data.y_test
    for k in range(2):
        for j, r in enumerate(runs):
            net = ZooNetwork(arch, res.flats[k, j], r.activation)
            with torch.no_grad():
                assert accuracy(net(x), y) == res.metrics["test_accuracy"][k, j]
            sub = run_start(r, len(data.y_train)).subset
            train = network_logits(net, torch.tensor(data.x_train)[sub])
            assert accuracy(train, data.y_train[sub.numpy()]) \
                == res.metrics["train_accuracy"][k, j]


def test_run_start_draws_weights_then_subset_from_the_run_seed():
    run = make_runs(ctc(size=16), 1, train_fraction=0.25)[0]
    a, b = run_start(run, 1000), run_start(run, 1000)
    assert torch.equal(a.flat, b.flat) and torch.equal(a.subset, b.subset)
    assert len(a.subset) == 250 and len(set(a.subset.tolist())) == 250
    first, second = a.epoch_order(), a.epoch_order()
    assert sorted(first.tolist()) == sorted(a.subset.tolist())
    assert not torch.equal(first, second)


@pytest.mark.parametrize("w_init", ["he_normal", "glorot_normal", "normal", "truncated_normal"])
def test_initialisers_have_their_standard_deviation(w_init):
    arch = ctc(units=64, size=16)
    flat = init_flat(arch, w_init, 0.02, torch.Generator().manual_seed(0))
    w = arch.unflatten(flat)[1][0]  # conv 64 -> 64, 3x3: fan_in = fan_out = 576
    want = {"he_normal": (2 / 576) ** 0.5, "glorot_normal": (1 / 576) ** 0.5, "normal": 0.02,
            "truncated_normal": 0.02 * 0.8796}[w_init]
    assert w.std().item() == pytest.approx(want, rel=0.05)
    assert torch.count_nonzero(arch.unflatten(flat)[1][1]) == 0


def test_orthogonal_init_has_orthonormal_rows():
    arch = ctc(size=16)
    w = arch.unflatten(init_flat(arch, "orthogonal", 0.0, torch.Generator().manual_seed(0)))[1][0]
    m = w.reshape(16, -1)
    torch.testing.assert_close(m @ m.T, torch.eye(16), atol=1e-5, rtol=0)


def test_fused_evaluation_for_other_devices_agrees_with_the_exact_one():
    """On GPUs checkpoints are scored by the fused pass: same losses up to rounding, and the
    same predictions except where two logits nearly tie."""
    data = load_dataset("digits")
    runs = [r for r in sample_runs(30, "cnn_small", "digits", 0, 1, 16)
            if r.train_fraction == 0.5]
    runs.sort(key=lambda r: r.activation)
    arch = runs[0].arch
    res = train_group(arch, runs, data, 1, [1], 16, seed=0)
    pop = Population(arch, runs, torch.tensor(res.flats[0]))
    x, y = torch.tensor(data.x_test), torch.tensor(data.y_test)
    correct, loss = pop.evaluate(x, y)
    np.testing.assert_allclose(loss.double().mean(1).numpy(), res.metrics["test_loss"][0],
                               rtol=1e-4)
    np.testing.assert_allclose(correct.double().mean(1).numpy(),
                               res.metrics["test_accuracy"][0], atol=2 / len(y))
