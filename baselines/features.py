"""Weight features shared by the baselines: layer slots, per-tensor statistics, set elements.

Networks of different depth share one feature space through *slots*: the first `k` layers
(except the last) get slots 0..k-1 and the last layer gets slot k; layers in between have no
slot of their own and are seen only through statistics pooled over each layer kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from zoo_bench import LAYER_KINDS, Architecture, Zoo

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
N_STATS = 2 + len(QUANTILES)
CHUNK = 256


def layer_slot(arch: Architecture, i: int, k: int) -> int | None:
    """Slot of layer `i`: i for the first k non-last layers, k for the last, None in between."""
    last = len(arch.layers) - 1
    if i == last:
        return k
    return i if i < k else None


def tensor_stats(x: torch.Tensor) -> torch.Tensor:
    """Mean, variance and the 0/25/50/75/100 percentiles of each row of (B, n): (B, 7)."""
    q = torch.quantile(x, torch.tensor(QUANTILES, dtype=x.dtype), dim=1).T
    return torch.cat([x.mean(1, keepdim=True), x.var(1, correction=0, keepdim=True), q], dim=1)


def statnn_dim(k: int) -> int:
    """Length of `statnn_features` rows for `k` first-layer slots."""
    return (k + 1) * 2 * N_STATS + len(LAYER_KINDS) * 2 * N_STATS + k + len(LAYER_KINDS) + 2


def statnn_features(
    zoo: Zoo, positions: Sequence[int] | np.ndarray | None = None, k: int = 3
) -> np.ndarray:
    """Unterthiner et al.'s per-tensor statistics in one space for any depth: (N, statnn_dim(k)).

    Per network: weight and bias statistics of each slot (zeros where the net has no such
    layer), the same statistics pooled over all weights / biases of each layer kind, presence
    flags of the first-k slots and of each kind, log parameter count and depth. Every value
    goes through sign(x) * log1p(|x|), so diverged networks cannot swamp the scale.
    """
    pos = np.arange(len(zoo)) if positions is None else np.asarray(positions, dtype=np.int64)
    out = np.zeros((len(pos), statnn_dim(k)), dtype=np.float32)
    where = {int(p): i for i, p in enumerate(pos)}
    for arch_name, group in zoo.arch_groups(pos).items():
        arch = zoo.architectures[arch_name]
        for s in range(0, len(group), CHUNK):
            chunk = group[s : s + CHUNK]
            flat = np.nan_to_num(zoo.flat_batch(chunk), nan=0.0, posinf=0.0, neginf=0.0)
            feats = _arch_features(arch, torch.from_numpy(flat), k)
            out[[where[int(p)] for p in chunk]] = feats.numpy()
    return out


def _arch_features(arch: Architecture, flat: torch.Tensor, k: int) -> torch.Tensor:
    b = flat.shape[0]
    params = arch.unflatten(flat)
    slots = torch.zeros(b, k + 1, 2 * N_STATS)
    present = torch.zeros(b, k)
    pooled: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {
        kind: ([], []) for kind in LAYER_KINDS
    }
    for i, (layer, (w, bias)) in enumerate(zip(arch.layers, params, strict=True)):
        w, bias = w.reshape(b, -1), bias.reshape(b, -1)
        slot = layer_slot(arch, i, k)
        if slot is not None:
            slots[:, slot] = torch.cat([tensor_stats(w), tensor_stats(bias)], dim=1)
            if slot < k:
                present[:, slot] = 1.0
        pooled[layer.kind][0].append(w)
        pooled[layer.kind][1].append(bias)
    kinds = []
    for ws, bs in pooled.values():
        if ws:
            stats = [tensor_stats(torch.cat(ws, 1)), tensor_stats(torch.cat(bs, 1))]
            kinds.append(torch.cat(stats, 1))
        else:
            kinds.append(torch.zeros(b, 2 * N_STATS))
    kind_present = torch.tensor([[float(bool(ws)) for ws, _ in pooled.values()]]).expand(b, -1)
    shape = torch.tensor([[np.log(arch.n_params), float(len(arch.layers))]]).expand(b, -1)
    feats = torch.cat([slots.reshape(b, -1), *kinds, present, kind_present, shape.float()], dim=1)
    return torch.sign(feats) * torch.log1p(feats.abs())


def element_layout(
    arch: Architecture, k: int
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Per-element context for set methods: (meta (P, 4 + k + 1), scale (P,), tensor spans).

    meta columns: is_bias, is_conv, relative depth, log fan-in, then a one-hot of the layer's
    slot. `scale` is sqrt(fan_in), which brings weights of every layer to a common size.
    `spans` are the (start, end) of each weight and bias tensor in the flat vector.
    """
    n_layers = len(arch.layers)
    meta = torch.zeros(arch.n_params, 4 + k + 1)
    scale = torch.ones(arch.n_params)
    spans = []
    for i, (layer, (s, w, e)) in enumerate(zip(arch.layers, arch.offsets(), strict=True)):
        fan_in = float(np.prod(layer.weight_shape[1:]))
        for start, end, is_bias in ((s, w, 0.0), (w, e, 1.0)):
            meta[start:end, 0] = is_bias
            meta[start:end, 1] = float(layer.kind == "conv2d")
            meta[start:end, 2] = i / max(n_layers - 1, 1)
            meta[start:end, 3] = np.log(fan_in) / 5.0
            slot = layer_slot(arch, i, k)
            if slot is not None:
                meta[start:end, 4 + slot] = 1.0
            scale[start:end] = np.sqrt(fan_in)
            spans.append((start, end))
    return meta, scale, spans


def stratified_indices(
    spans: Sequence[tuple[int, int]], per_tensor: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`per_tensor` flat indices drawn (with replacement) from every tensor's span."""
    parts = [
        start + torch.randint(0, end - start, (per_tensor,), generator=generator)
        for start, end in spans
    ]
    return torch.cat(parts)
