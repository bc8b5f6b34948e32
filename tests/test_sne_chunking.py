"""pad-chunk-encode's layout: neuron-major chunks, masked padding, ranges on their own, groups."""

from __future__ import annotations

import torch

from sne.chunking import build_chunks, layout, plan_groups, subsample
from zoo_bench.arch import Architecture, LayerSpec
from zoo_bench.families import cnn_s, ctc

TINY = Architecture(
    "tiny",
    (LayerSpec("linear", (3, 2), (3,)), LayerSpec("linear", (1, 3), (1,))),
    (2,),
)



def test_a_layer_is_read_neuron_major_and_padded_to_the_chunk_size():
    flat = torch.arange(TINY.n_params, dtype=torch.float32)  # W0 = 0..5, b0 = 6..8, W1, b1
    ch = build_chunks(layout([(TINY, flat[None])], chunk_size=4), 0, 4)
    w0 = flat[:6].view(3, 2)
    row = [[*w0[i].tolist(), float(6 + i)] for i in range(3)]  # unit i: its weights, its bias
    layer0 = [v for r in row for v in r]
    assert ch.values[:3].flatten()[:9].tolist() == layer0
    assert ch.mask[:3].flatten().tolist() == [True] * 9 + [False] * 3
    assert ch.is_bias[:3].flatten()[:9].tolist() == [False, False, True] * 3
    assert ch.values[3].tolist()[:4] == [9.0, 10.0, 11.0, 12.0]  # layer 1: 3 weights + bias
    assert ch.item.tolist() == [0, 0, 0, 1]


def test_conv_units_hold_in_channels_times_kernel_weights_then_the_bias():
    arch = ctc(size=16)
    flat = torch.randn(arch.n_params)
    lay = layout([(arch, flat[None])], chunk_size=10)
    ch = build_chunks(lay, 0, int(lay.chunk_start[1]))  # layer 0: 16 units x (9 + 1)
    w, b = arch.unflatten(flat)[0]
    want = torch.cat([w.reshape(16, 9), b[:, None]], dim=1)
    torch.testing.assert_close(ch.values, want)
    assert bool(ch.mask.all())


def test_any_range_of_chunks_equals_the_same_slice_of_the_whole_batch():
    a, b = ctc(size=16), cnn_s()
    groups = [(a, torch.randn(2, a.n_params)), (b, torch.randn(3, b.n_params))]
    lay = layout(groups, chunk_size=16)
    whole = build_chunks(lay, 0, lay.n_chunks)
    part = build_chunks(lay, 37, 191)
    torch.testing.assert_close(part.values, whole.values[37:191])
    assert torch.equal(part.mask, whole.mask[37:191])
    assert torch.equal(part.item, whole.item[37:191])


def test_mixed_batch_bookkeeping_counts_every_real_weight_once():
    a, b = ctc(size=16), cnn_s()
    groups = [(a, torch.randn(2, a.n_params)), (b, torch.randn(3, b.n_params))]
    lay = layout(groups, chunk_size=16)
    ch = build_chunks(lay, 0, lay.n_chunks)
    assert int(ch.mask.sum()) == 2 * a.n_params + 3 * b.n_params
    assert lay.n_networks == 5 and lay.n_items == 2 * len(a.layers) + 3 * len(b.layers)
    assert lay.net.tolist() == [0] * 4 + [1] * 4 + [2] * 5 + [3] * 5 + [4] * 5  # ctc 4, cnn_s 5
    assert lay.depth.tolist()[:9] == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    per_net = (lay.net_chunk_start[1:] - lay.net_chunk_start[:-1]).tolist()
    assert per_net[:2] == [per_net[0]] * 2 and per_net[2:] == [per_net[2]] * 3


def test_groups_pack_whole_sets_up_to_the_budget_and_isolate_larger_ones():
    starts = torch.tensor([0, 3, 5, 20, 21, 22])  # set sizes 3, 2, 15, 1, 1
    assert plan_groups(starts, budget=5) == [(0, 2), (2, 3), (3, 5)]
    assert plan_groups(starts, budget=100) == [(0, 5)]


def test_subsampling_keeps_at_most_k_random_chunks_of_each_layer_unchanged():
    a, b = ctc(size=16), cnn_s()
    lay = layout([(a, torch.randn(2, a.n_params)), (b, torch.randn(1, b.n_params))], 16)
    sub = subsample(lay, 5, torch.Generator().manual_seed(0))
    counts = (lay.chunk_start[1:] - lay.chunk_start[:-1]).clamp(max=5)
    assert torch.equal(sub.chunk_start[1:] - sub.chunk_start[:-1], counts)
    full, part = build_chunks(lay, 0, lay.n_chunks), build_chunks(sub, 0, sub.n_chunks)
    same = lay.chunk_start[part.item] + sub.chunk_k  # where each kept chunk sits in the full batch
    assert torch.equal(full.values[same], part.values) and torch.equal(full.item[same], part.item)
    other = subsample(lay, 5, torch.Generator().manual_seed(1))
    assert not torch.equal(other.chunk_k, sub.chunk_k)
