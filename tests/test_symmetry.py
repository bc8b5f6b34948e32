"""`Architecture.symmetry()`: every transformation built from the description keeps the function,
and breaking the description (one side of a permutation, a forbidden sign flip) changes it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from zoo_bench import Architecture, LayerSpec, Zoo, ZooFormatError, ZooWriter, cnn_s, cnn_small, ctc
from zoo_bench import mixed as mixed_arch
from zoo_bench.arch import ZooNetwork

ARCHS = {
    "ctc": ctc(size=16),
    "cnn_s": cnn_s(),
    "cnn_small": cnn_small(),
    "mixed": mixed_arch(3, 6),
}
X = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def arch_zoo(tmp_path):
    """Factory: a random-weight zoo of one architecture and one activation, opened."""

    def make(arch: Architecture, activation: str, n: int = 3) -> Zoo:
        rng = np.random.default_rng(0)
        out = tmp_path / f"{arch.name}-{activation}"
        with ZooWriter(out, out.name, [arch], {"kind": "test"}) as w:
            flats = rng.normal(0, 0.4, size=(n, arch.n_params)).astype(np.float32)
            rows = [dict(run_id=f"r{i}", dataset="toy", epoch=0, hp_activation=activation,
                         test_accuracy=0.5, train_accuracy=0.5, test_loss=1.0, train_loss=1.0)
                    for i in range(n)]
            w.add_many(arch.name, flats, rows)
        return Zoo.open(out)

    return make


def outputs(arch: Architecture, flat: np.ndarray, activation: str) -> torch.Tensor:
    x = X[..., : arch.input_shape[1], : arch.input_shape[2]]
    with torch.no_grad():
        return ZooNetwork(arch, flat.astype(np.float32), activation)(x)


def reference(zoo: Zoo, i: int) -> torch.Tensor:
    arch = zoo.architecture_of(i)
    with torch.no_grad():
        return zoo.module(i)(X[..., : arch.input_shape[1], : arch.input_shape[2]])


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("name", list(ARCHS))
def test_every_sampled_transformation_keeps_the_networks_function(arch_zoo, name, activation):
    zoo = arch_zoo(ARCHS[name], activation)
    sym = zoo.architecture_of(0).symmetry()
    rng = np.random.default_rng(1)
    for i in range(len(zoo)):
        for _ in range(3):
            perms, signs = sym.sample(rng, activation)
            moved = sym.apply(zoo.flat(i), perms, signs)
            assert not np.array_equal(moved, zoo.flat(i))
            torch.testing.assert_close(
                outputs(zoo.architecture_of(i), moved, activation), reference(zoo, i),
                rtol=1e-4, atol=1e-5,
            )
    if activation == "tanh":  # odd activations do get sign flips where pooling allows them
        assert any(f for f in sym.sign_flips("tanh"))
    assert not any(sym.sign_flips("relu"))


@pytest.mark.parametrize("name", list(ARCHS))
def test_permuting_units_without_the_next_layers_inputs_changes_the_function(arch_zoo, name):
    zoo = arch_zoo(ARCHS[name], "relu", n=1)
    sym = zoo.architecture_of(0).symmetry()
    for k, group in enumerate(sym.groups):
        perms = [np.arange(g.units) for g in sym.groups]
        perms[k] = np.roll(np.arange(group.units), 1)
        signs = [np.ones(g.units) for g in sym.groups]
        one_sided = dataclasses.replace(sym, tensors=tuple(
            dataclasses.replace(t, axes=tuple(None if (a == k and t.layer != k) else a
                                              for a in t.axes))
            for t in sym.tensors
        ))
        broken = one_sided.apply(zoo.flat(0), perms, signs)
        assert not torch.allclose(outputs(zoo.architecture_of(0), broken, "relu"),
                                  reference(zoo, 0), rtol=1e-4, atol=1e-5), (name, k)
        whole = sym.apply(zoo.flat(0), perms, signs)  # the same permutation on both sides
        torch.testing.assert_close(outputs(zoo.architecture_of(0), whole, "relu"),
                                   reference(zoo, 0), rtol=1e-4, atol=1e-5)


def test_a_sign_flip_of_max_pooled_units_is_not_a_symmetry(arch_zoo):
    zoo = arch_zoo(cnn_s(), "tanh", n=1)
    sym = zoo.architecture_of(0).symmetry()
    assert [g.odd_sign_flip for g in sym.groups] == [False, False, True, True]
    perms = [np.arange(g.units) for g in sym.groups]
    signs = [np.ones(g.units) for g in sym.groups]
    signs[0] = -signs[0]  # conv1 -> max-pool -> tanh: max(-x) != -max(x)
    flipped = sym.apply(zoo.flat(0), perms, signs)
    assert not torch.allclose(outputs(zoo.architecture_of(0), flipped, "tanh"), reference(zoo, 0))


def test_the_description_of_cnn_s_fixes_input_and_output_and_states_the_flatten_order():
    sym = cnn_s().symmetry()
    assert [g.layer for g in sym.groups] == [0, 1, 2, 3]  # the output layer (4) is fixed
    assert [g.units for g in sym.groups] == [8, 6, 4, 20]
    assert [g.block for g in sym.groups] == [1, 1, 9, 1]  # 4 channels x 3x3 flattened into 36
    weights = [t for t in sym.tensors if t.param == "weight"]
    assert weights[0].axes == (0, None, None, None)  # input channels are fixed
    assert weights[3].shape == (20, 36) and weights[3].view_shape == (20, 4, 9)
    assert weights[3].axes == (3, 2, None)  # channel c owns columns 9c .. 9c+8
    assert weights[4].axes == (None, 3)  # logits are fixed
    assert [t.param for t in sym.tensors] == ["weight", "bias"] * 5  # flat-vector order


@pytest.mark.parametrize("name", list(ARCHS))
def test_nfn_shapes_chain_layer_to_layer(name):
    arch = ARCHS[name]
    weights, biases = arch.symmetry().nfn_shapes()
    assert len(weights) == len(biases) == len(arch.layers)
    for prev, w in zip(weights, weights[1:], strict=False):
        assert w[1] == prev[0]  # n_in of each layer is n_out of the one before
    assert [b[0] for b in biases] == [w[0] for w in weights]
    views = [t.view_shape for t in arch.symmetry().tensors]
    assert sum(int(np.prod(v)) for v in views) == arch.n_params


def test_global_pooling_gives_one_column_per_channel():
    sym = mixed_arch(2, 5).symmetry()
    assert [g.block for g in sym.groups] == [1, 1]
    assert sym.tensors[-2].view_shape == (10, 5) and sym.tensors[-2].axes == (None, 1)


def test_a_conv_feeding_a_dense_layer_without_flatten_or_pooling_is_rejected():
    arch = Architecture("bad", (
        LayerSpec("conv2d", (4, 1, 3, 3), (4,)),
        LayerSpec("linear", (10, 4), (10,)),
    ), (1, 8, 8))
    with pytest.raises(ZooFormatError, match="without 'gap' or 'flatten'"):
        arch.symmetry()
    flat_wrong = Architecture("bad2", (
        LayerSpec("conv2d", (4, 1, 3, 3), (4,), pool="flatten"),
        LayerSpec("linear", (10, 4 * 5 * 5), (10,)),
    ), (1, 8, 8))
    with pytest.raises(ZooFormatError, match="reads 100 inputs"):
        flat_wrong.symmetry()
