"""SNEEncoder: masked padding, batch independence, bounded groups, the naive reference, switches."""

from __future__ import annotations

import pytest
import torch

import sne.encoder
from sne.chunking import layout
from sne.encoder import SNEConfig, SNEEncoder
from sne.naive import naive_forward
from zoo_bench.arch import Architecture, LayerSpec
from zoo_bench.families import cnn_s, ctc

SMALL = ctc(size=16)
WIDE = ctc(units=24, size=16)  # wider, 3x3 kernels
DEEP = cnn_s()  # deeper, 5x5 and 2x2 kernels, max-pool + flatten, two dense layers
CONFIGS = {
    "default": {},
    "flat": {"hierarchy": False},
    "isab-no-positional": {"chunk_block": "isab", "positional": False},
    "chunk-7": {"chunk_size": 7},
}



def model(seed: int = 0, **config) -> SNEEncoder:
    torch.manual_seed(seed)
    return SNEEncoder(SNEConfig(**config)).eval()


def weights(arch: Architecture, n: int, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.randn(n, arch.n_params, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_padding_values_never_reach_the_output(config):
    m = model(**config)
    groups = [(SMALL, weights(SMALL, 2)), (DEEP, weights(DEEP, 2))]
    with torch.no_grad():
        base = m(groups, pad_value=0.0)
        for pad in (1e4, -7.0):
            assert torch.equal(m(groups, pad_value=pad), base)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_network_predicts_the_same_alone_and_batched_with_larger_ones(config):
    m = model(**config)
    w = weights(SMALL, 1)
    with torch.no_grad():
        alone = m([(SMALL, w)])
        batched = m([(WIDE, weights(WIDE, 3, 1)), (SMALL, torch.cat([weights(SMALL, 2, 2), w])),
                     (DEEP, weights(DEEP, 2, 3))])
    torch.testing.assert_close(batched[5:6], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_batched_encoder_equals_the_naive_per_network_loop(config):
    m = model(**config)
    groups = [(SMALL, weights(SMALL, 2)), (DEEP, weights(DEEP, 2, 1)), (WIDE, weights(WIDE, 1))]
    with torch.no_grad():
        torch.testing.assert_close(m(groups), naive_forward(m, groups), rtol=1e-5, atol=1e-6)


def count_chunks(monkeypatch) -> list[int]:
    """The number of chunks of every `build_chunks` call the encoder makes from now on."""
    sizes: list[int] = []
    real = sne.encoder.build_chunks

    def spy(lay, start, end, pad_value=0.0):
        sizes.append(end - start)
        return real(lay, start, end, pad_value)

    monkeypatch.setattr(sne.encoder, "build_chunks", spy)
    return sizes


def test_inference_never_encodes_more_chunks_at_once_than_the_budget(monkeypatch):
    sizes = count_chunks(monkeypatch)
    groups = [(WIDE, weights(WIDE, 2)), (DEEP, weights(DEEP, 2))]
    with torch.no_grad():
        unbounded = model(chunk_budget=10**6)(groups)
        sizes.clear()
        bounded = model(chunk_budget=9)(groups)  # layers of WIDE hold 122 chunks: streamed
    assert max(sizes) <= 9
    torch.testing.assert_close(bounded, unbounded, rtol=1e-5, atol=1e-6)


def test_training_reads_at_most_train_chunks_per_layer_and_inference_reads_all(monkeypatch):
    sizes = count_chunks(monkeypatch)
    m = model(train_chunks=3, chunk_budget=10**6)
    m.train()([(SMALL, weights(SMALL, 2))])
    m.eval()([(SMALL, weights(SMALL, 2))])
    assert sizes == [2 * 4 * 3, 2 * 157]  # 4 layers x 3 chunks per network; all 157 chunks


def test_checkpointed_training_gives_the_same_loss_and_gradients():
    groups = [(SMALL, weights(SMALL, 3)), (DEEP, weights(DEEP, 2))]
    grads = []
    for ckpt in (False, True):
        m = model(chunk_budget=50, checkpoint=ckpt, train_chunks=0).train()
        m(groups).pow(2).sum().backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_every_parameter_learns():
    m = model(train_chunks=0).train()
    m([(SMALL, weights(SMALL, 2)), (DEEP, weights(DEEP, 1))]).sum().backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.any()]
    assert dead == []


def test_same_seed_same_model_and_outputs_different_seed_different():
    groups = [(SMALL, weights(SMALL, 3))]
    with torch.no_grad():
        a, b, c = model(1)(groups), model(1)(groups), model(2)(groups)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_positional_encodings_tell_layer_order_apart():
    square = LayerSpec("linear", (6, 6), (6,))
    arch = Architecture("mlp", (square, square, square, LayerSpec("linear", (1, 6), (1,))), (6,))
    w = weights(arch, 1)
    n = square.n_params
    swapped = torch.cat([w[:, n : 2 * n], w[:, :n], w[:, 2 * n :]], dim=1)  # layers 0 and 1
    pair = layout([(arch, torch.cat([w, swapped]))], chunk_size=32)
    with torch.no_grad():
        on, off = model(positional=True).embed(pair), model(positional=False).embed(pair)
    assert (on[0] - on[1]).abs().max() > 1e-4  # network vectors, O(1) entries
    assert (off[0] - off[1]).abs().max() < 1e-6  # without encodings: a set of layers


def test_switches_shape_the_model():
    assert not hasattr(model(hierarchy=False), "over_layers_set")
    assert sum(p.numel() for p in model(dim=32).parameters()) > sum(
        p.numel() for p in model().parameters()
    )
    with pytest.raises(ValueError, match="chunk_block"):
        SNEConfig(chunk_block="mlp")
    with pytest.raises(ValueError, match="chunk_size"):
        SNEConfig(chunk_size=0)
