"""Per-tensor weight statistics of networks: one public place for every method that uses them.

StatNN (Unterthiner et al. 2020) feeds these to an MLP; `sne_stats` gives them to SNE's head.

Networks of different depth share one feature space through *slots*: the first `k` layers
(except the last) get slots 0..k-1 and the last layer gets slot k; layers in between have no
slot of their own and are seen only through statistics pooled over each layer kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from zoo_bench.arch import LAYER_KINDS, Architecture
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
            feats = network_statistics(arch, torch.from_numpy(flat), k)
            out[[where[int(p)] for p in chunk]] = feats.numpy()
    return out


def network_statistics(arch: Architecture, flat: torch.Tensor, k: int = 3) -> torch.Tensor:
    """`statnn_features` of networks given as flats (B, P) of one architecture: (B, statnn_dim(k)).

    Computed on flat's device and dtype, so a method can take them per batch (e.g. of
    symmetry-transformed weights) instead of once per zoo.
    """
    b = flat.shape[0]
    params = arch.unflatten(flat)
    opts = {"dtype": flat.dtype, "device": flat.device}
    slots = torch.zeros(b, k + 1, 2 * N_STATS, **opts)
    present = torch.zeros(b, k, **opts)
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
            kinds.append(torch.zeros(b, 2 * N_STATS, **opts))
    kind_present = torch.tensor([[float(bool(ws)) for ws, _ in pooled.values()]], **opts)
    shape = torch.tensor([[np.log(arch.n_params), float(len(arch.layers))]], **opts)
    feats = torch.cat([slots.reshape(b, -1), *kinds, present, kind_present.expand(b, -1),
                       shape.expand(b, -1)], dim=1)
    return torch.sign(feats) * torch.log1p(feats.abs())


