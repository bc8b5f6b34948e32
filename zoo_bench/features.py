"""Per-tensor weight statistics of networks: one public place for every method that uses them.

StatNN (Unterthiner et al. 2020) feeds these to an MLP; `sne_stats` gives them to SNE's head.

Networks of different depth share one feature space through *slots*: the first `k` layers
(except the last) get slots 0..k-1 and the last layer gets slot k; layers in between have no
slot of their own and are seen only through statistics pooled over each layer kind.

Which kinds are pooled is part of the feature space (`kinds`): the format-1 kinds (conv2d,
linear) by default, so the features of CNN zoos are what they always were; `statnn_kinds`
widens them to every kind (sine, patch embedding, layer norm, q/k/v/o, MLP block) when any
network of a training zoo has one. A layer whose kind is not pooled is seen only in its slot
(if it has one), in the parameter count and in the depth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from zoo_bench.arch import ALL_LAYER_KINDS, LAYER_KINDS, Architecture
from zoo_bench.store import Zoo

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
    q = torch.quantile(x, torch.tensor(QUANTILES, dtype=x.dtype, device=x.device), dim=1).T
    return torch.cat([x.mean(1, keepdim=True), x.var(1, correction=0, keepdim=True), q], dim=1)


def statnn_kinds(archs: Iterable[Architecture]) -> tuple[str, ...]:
    """The layer kinds a feature space fitted on `archs` pools: conv2d and linear when every
    layer is one of them (the CNN features, unchanged), else every kind zoo-bench knows."""
    plain = all(layer.kind in LAYER_KINDS for arch in archs for layer in arch.layers)
    return LAYER_KINDS if plain else ALL_LAYER_KINDS


def statnn_dim(k: int, kinds: Sequence[str] = LAYER_KINDS) -> int:
    """Length of `statnn_features` rows for `k` first-layer slots and pooled `kinds`."""
    return (k + 1) * 2 * N_STATS + len(kinds) * 2 * N_STATS + k + len(kinds) + 2


def statnn_features(
    zoo: Zoo, positions: Sequence[int] | np.ndarray | None = None, k: int = 3,
    kinds: Sequence[str] = LAYER_KINDS,
) -> np.ndarray:
    """Unterthiner et al.'s per-tensor statistics in one space for any depth and layer kinds:
    (N, statnn_dim(k, kinds)).

    Per network: weight and bias statistics of each slot (zeros where the net has no such
    layer), the same statistics pooled over all weights / biases of each of `kinds`, presence
    flags of the first-k slots and of each kind, log parameter count and depth. Every value
    goes through sign(x) * log1p(|x|), so diverged networks cannot swamp the scale.
    """
    pos = np.arange(len(zoo)) if positions is None else np.asarray(positions, dtype=np.int64)
    out = np.zeros((len(pos), statnn_dim(k, kinds)), dtype=np.float32)
    where = {int(p): i for i, p in enumerate(pos)}
    for arch_name, group in zoo.arch_groups(pos).items():
        arch = zoo.architectures[arch_name]
        for s in range(0, len(group), CHUNK):
            chunk = group[s : s + CHUNK]
            flat = np.nan_to_num(zoo.flat_batch(chunk), nan=0.0, posinf=0.0, neginf=0.0)
            feats = network_statistics(arch, torch.from_numpy(flat), k, kinds)
            out[[where[int(p)] for p in chunk]] = feats.numpy()
    return out


def network_statistics(
    arch: Architecture, flat: torch.Tensor, k: int = 3, kinds: Sequence[str] = LAYER_KINDS
) -> torch.Tensor:
    """`statnn_features` of flats (B, P) of one architecture: (B, statnn_dim(k, kinds)).

    Computed on flat's device and dtype, so a method can take them per batch (e.g. of
    symmetry-transformed weights) instead of once per zoo.
    """
    unknown = sorted(set(kinds) - set(ALL_LAYER_KINDS))
    if unknown:
        raise ValueError(f"network_statistics: unknown layer kinds {unknown}; pool kinds from "
                         f"{ALL_LAYER_KINDS} (see statnn_kinds)")
    b = flat.shape[0]
    params = arch.unflatten(flat)
    opts = {"dtype": flat.dtype, "device": flat.device}
    slots = torch.zeros(b, k + 1, 2 * N_STATS, **opts)
    present = torch.zeros(b, k, **opts)
    pooled: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {
        kind: ([], []) for kind in kinds
    }
    for i, (layer, (w, bias)) in enumerate(zip(arch.layers, params, strict=True)):
        w, bias = w.reshape(b, -1), bias.reshape(b, -1)
        slot = layer_slot(arch, i, k)
        if slot is not None:
            slots[:, slot] = torch.cat([tensor_stats(w), tensor_stats(bias)], dim=1)
            if slot < k:
                present[:, slot] = 1.0
        if layer.kind in pooled:
            pooled[layer.kind][0].append(w)
            pooled[layer.kind][1].append(bias)
    per_kind = []
    for ws, bs in pooled.values():
        if ws:
            stats = [tensor_stats(torch.cat(ws, 1)), tensor_stats(torch.cat(bs, 1))]
            per_kind.append(torch.cat(stats, 1))
        else:
            per_kind.append(torch.zeros(b, 2 * N_STATS, **opts))
    kind_present = torch.tensor([[float(bool(ws)) for ws, _ in pooled.values()]], **opts)
    shape = torch.tensor([[np.log(arch.n_params), float(len(arch.layers))]], **opts)
    feats = torch.cat([slots.reshape(b, -1), *per_kind, present, kind_present.expand(b, -1),
                       shape.expand(b, -1)], dim=1)
    return torch.sign(feats) * torch.log1p(feats.abs())


