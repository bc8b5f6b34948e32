"""Every sampled weight-space transformation leaves the materialised network unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sne.symmetry import apply_transform, logit_invariance_penalty, sample_transform
from zoo_bench import Zoo, ZooWriter, cnn_s, cnn_small, ctc, mixed
from zoo_bench.arch import ZooNetwork


@pytest.fixture
def arch_zoo(tmp_path):
    """Factory: a random-weight zoo of one architecture and one activation, opened."""

    def make(arch, activation: str, n: int = 4, seed: int = 0) -> Zoo:
        rng = np.random.default_rng(seed)
        out = tmp_path / f"{arch.name}-{activation}"
        with ZooWriter(out, out.name, [arch], {"kind": "test"}) as w:
            flats = rng.normal(0, 0.3, size=(n, arch.n_params)).astype(np.float32)
            rows = [dict(run_id=f"r{i}", dataset="toy", epoch=0, hp_activation=activation,
                         test_accuracy=0.5, train_accuracy=0.5, test_loss=1.0, train_loss=1.0)
                    for i in range(n)]
            w.add_many(arch.name, flats, rows)
        return Zoo.open(out)

    return make


def transformed_outputs(zoo: Zoo, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(original output, output of the transformed flat vector) for every network of the zoo."""
    arch = zoo.architecture_of(0)
    acts = [str(a) for a in zoo.table["hp_activation"]]
    g = sample_transform(arch, acts, torch.Generator().manual_seed(seed))
    flats = torch.from_numpy(zoo.flat_batch(np.arange(len(zoo))))
    new = apply_transform(arch, flats, g)
    x = torch.randn(8, *arch.input_shape, generator=torch.Generator().manual_seed(seed))
    pairs = []
    with torch.no_grad():
        for i in range(len(zoo)):
            assert not torch.equal(new[i], flats[i])  # the transformation did move weights
            pairs.append((zoo.module(i)(x), ZooNetwork(arch, new[i].numpy(), acts[i])(x)))
    return pairs


def test_permutations_keep_a_relu_ctc_zoo_function(make_zoo):
    zoo = make_zoo(runs=2)
    for seed in range(3):
        for out, out_g in transformed_outputs(zoo, seed):
            torch.testing.assert_close(out_g, out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
@pytest.mark.parametrize("arch", [cnn_s(), cnn_small()], ids=["pool-first", "pool-after"])
def test_cnns_with_max_pool_and_flatten_keep_their_function(arch_zoo, arch, activation):
    zoo = arch_zoo(arch, activation)
    for seed in range(3):
        for out, out_g in transformed_outputs(zoo, seed):
            torch.testing.assert_close(out_g, out, rtol=1e-4, atol=1e-5)


def test_tanh_ctc_gets_sign_flips_and_keeps_its_function(arch_zoo):
    zoo = arch_zoo(ctc(size=16), "tanh")
    g = sample_transform(zoo.architecture_of(0), ["tanh"] * 4, torch.Generator().manual_seed(0))
    assert all((s == -1).any() for s in g.signs)
    for out, out_g in transformed_outputs(zoo):
        torch.testing.assert_close(out_g, out, rtol=1e-4, atol=1e-5)


def test_sampling_follows_the_architectures_own_description():
    sym = cnn_s().symmetry()
    g = sample_transform(cnn_s(), ["relu", "tanh", "tanh"], torch.Generator().manual_seed(0))
    assert g.symmetry == sym
    assert [tuple(p.shape) for p in g.perms] == [(3, gr.units) for gr in sym.groups]
    assert all(bool((s[0] == 1).all()) for s in g.signs)  # relu: no sign flips
    for s, gr in zip(g.signs, sym.groups, strict=True):  # max-pooled units never flip
        assert gr.odd_sign_flip or bool((s == 1).all())


def test_the_batched_torch_transform_equals_the_descriptions_numpy_one():
    arch = mixed(3, 5)
    flats = torch.randn(4, arch.n_params, generator=torch.Generator().manual_seed(0))
    g = sample_transform(arch, ["tanh"] * 4, torch.Generator().manual_seed(1))
    moved = apply_transform(arch, flats, g)
    for i in range(4):
        want = g.symmetry.apply(flats[i].numpy(), [p[i].numpy() for p in g.perms],
                                [s[i].numpy() for s in g.signs])
        np.testing.assert_array_equal(moved[i].numpy(), want)


def test_a_one_sided_permutation_is_not_a_symmetry(make_zoo):
    zoo = make_zoo(runs=1)
    arch = zoo.architecture_of(0)
    params = [[w.clone(), b.clone()] for w, b in arch.unflatten(zoo.flat(0).copy())]
    perm = torch.roll(torch.arange(arch.layers[1].fan_out), 1)
    params[1][0], params[1][1] = params[1][0][perm], params[1][1][perm]  # rows only, not columns
    broken = arch.flatten([tuple(p) for p in params])
    x = torch.randn(8, *arch.input_shape)
    with torch.no_grad():
        assert not torch.allclose(zoo.module(0)(x), ZooNetwork(arch, broken.numpy(), "relu")(x))


def test_a_sign_flip_before_max_pooling_is_not_a_symmetry(arch_zoo):
    zoo = arch_zoo(cnn_s(), "tanh", n=1)
    arch = zoo.architecture_of(0)
    params = [[w.clone(), b.clone()] for w, b in arch.unflatten(zoo.flat(0).copy())]
    params[0][0], params[0][1] = -params[0][0], -params[0][1]  # conv1 -> tanh -> max2
    params[1][0] = -params[1][0]
    flipped = arch.flatten([tuple(p) for p in params])
    x = torch.randn(8, *arch.input_shape)
    with torch.no_grad():
        assert not torch.allclose(zoo.module(0)(x), ZooNetwork(arch, flipped.numpy(), "tanh")(x))


def test_same_generator_seed_gives_the_same_transformation():
    arch = ctc(size=16)
    a = sample_transform(arch, ["tanh"] * 5, torch.Generator().manual_seed(3))
    b = sample_transform(arch, ["tanh"] * 5, torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.perms + a.signs, b.perms + b.signs, strict=True))


def test_penalty_is_the_mean_squared_logit_distance():
    penalty = logit_invariance_penalty(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0]))
    assert float(penalty) == 2.0
