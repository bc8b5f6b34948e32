"""A naive reference for SNEEncoder: Python loops over networks and layers, dense padded sets.

Same modules, same weights, an independent route to the same numbers: it checks the batched
layout and segment attention (tests) and is the baseline of the speed-up figure (benchmark).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sne.chunking import KIND_IDS
from sne.encoder import SNEEncoder, sinusoid
from zoo_bench import Architecture


def naive_forward(
    model: SNEEncoder, groups: Sequence[tuple[Architecture, torch.Tensor]], pad_value: float = 0.0
) -> torch.Tensor:
    """Logits (B,) computed one network and one layer at a time."""
    out = []
    for arch, flats in groups:
        for flat in torch.as_tensor(flats):
            out.append(_one_network(model, arch, flat, pad_value))
    return torch.cat(out)


def _one_network(
    model: SNEEncoder, arch: Architecture, flat: torch.Tensor, pad: float
) -> torch.Tensor:
    cfg = model.config
    layer_vectors, chunk_vectors = [], []
    for depth, (layer, (w, b)) in enumerate(
        zip(arch.layers, arch.unflatten(flat), strict=True)
    ):
        x = _layer_chunks(model, KIND_IDS[layer.kind], depth, w, b, pad)
        if cfg.hierarchy:
            layer_vectors.append(model.over_chunks_pool(model.over_chunks_set(x[None])))
        else:
            chunk_vectors.append(x)
    if not cfg.hierarchy:
        v = torch.cat(chunk_vectors)[None]
        return model.head(model.over_chunks_pool(model.over_chunks_set(v)))[:, 0]
    v = torch.cat(layer_vectors)
    if cfg.positional:
        n = len(v)
        depths = torch.arange(n)
        kinds = torch.tensor([KIND_IDS[layer.kind] for layer in arch.layers])
        v = v + sinusoid(depths, cfg.dim) + model.kind_code(kinds, "layer")
    v = model.over_layers_pool(model.over_layers_set(v[None]))
    return model.head(v)[:, 0]


def _layer_chunks(
    model: SNEEncoder, kind: int, depth: int, w: torch.Tensor, b: torch.Tensor, pad: float
) -> torch.Tensor:
    """Chunk vectors (n, d) of one layer: neuron-major rows, padded to a multiple of c."""
    cfg = model.config
    c = cfg.chunk_size
    units, fan = w.shape[0], w[0].numel()
    rows = torch.cat([w.reshape(units, -1), b.reshape(-1, units).T], dim=1)  # (units, fan + nb)
    bias = torch.zeros_like(rows, dtype=torch.bool)
    bias[:, fan:] = True
    length = rows.numel()
    n = -(-length // c)
    extra = n * c - length
    values = torch.cat([rows.reshape(-1), torch.full((extra,), pad)]).view(n, c)
    is_bias = torch.cat([bias.reshape(-1), torch.zeros(extra, dtype=torch.bool)]).view(n, c)
    mask = torch.arange(n * c).view(n, c) < length
    full = [torch.full((n,), v) for v in (depth, kind, fan)]
    x = model.lift(values, is_bias, *full)
    x = model.chunk_pool(model.chunk_set(x, mask), mask)
    if cfg.positional:
        x = x + sinusoid(torch.full((n,), depth), cfg.dim)
        x = x + model.kind_code(torch.full((n,), kind), "chunk")
    return x
