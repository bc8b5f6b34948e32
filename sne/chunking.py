"""pad-chunk-encode, data side: networks -> one flat tensor of chunks with masks and segment ids.

Each layer is read neuron-major (every output unit's incoming weights, then its bias), padded to
a multiple of the chunk size c and cut into chunks. Every layer kind reads this way: a layer
norm's unit is its gain and its shift (one weight, one bias), an attention projection's unit one
row of q/k/v (or of o) and its bias, and a patch embedding's unit one output channel: its
C x p x p patch weights, then its column of the (tokens, D) token embeddings (`bias_len` biases
per unit instead of one). All chunks of all layers of all networks in a
batch have one global order (network by network, layer by layer), so any contiguous range of them
can be materialised on its own: that is what lets the encoder work in groups of bounded size.
Chunk indices are computed arithmetically per range, never stored for the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from zoo_bench import ALL_LAYER_KINDS, LAYER_KINDS, Architecture

# every kind's id; conv2d and linear keep 0 and 1, the ids of format 1, the newer kinds follow
KIND_IDS = {kind: i for i, kind in enumerate(ALL_LAYER_KINDS)}
N_BASE_KINDS = len(LAYER_KINDS)  # ids below this are format-1 kinds
assert ALL_LAYER_KINDS[:N_BASE_KINDS] == LAYER_KINDS
# the format-1 kind each kind reads like (a patch embedding is a strided convolution; every
# other kind is dense), so an encoder that never saw a kind still gives it a learned type code
BASE_KIND = {kind: int(kind != "conv2d" and kind != "patch_embed") for kind in ALL_LAYER_KINDS}


@dataclass(frozen=True)
class ChunkLayout:
    """Where every layer ("item") of a batch of networks lives in one weight buffer.

    Items are ordered network by network, layer by layer; network b's output row is b, in the
    order of the groups passed to `layout`. Arrays are indexed by item unless noted.
    """

    chunk_size: int
    buffer: torch.Tensor  # every network's flat vector, back to back
    net: torch.Tensor  # network index of the item
    depth: torch.Tensor  # layer index inside its network
    kind: torch.Tensor  # KIND_IDS of the layer
    weight_start: torch.Tensor  # buffer offset of the layer's weight
    bias_start: torch.Tensor  # buffer offset of the layer's bias
    fan: torch.Tensor  # incoming weights per output unit (in * kh * kw)
    units: torch.Tensor  # output units
    bias_len: torch.Tensor  # biases per output unit (1; a patch embedding's: one per token)
    chunk_start: torch.Tensor  # (items + 1,) first global chunk of each item, then the total
    net_chunk_start: torch.Tensor  # (networks + 1,) first global chunk of each network
    n_networks: int
    chunk_k: torch.Tensor | None = None  # after `subsample`: each chunk's index in its layer

    @property
    def n_items(self) -> int:
        return len(self.net)

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_start[-1])


@dataclass(frozen=True)
class Chunks:
    """A contiguous range of a layout's chunks, materialised: values (n, c) and what each is."""

    values: torch.Tensor  # (n, c) weights; padding holds `pad_value`
    mask: torch.Tensor  # (n, c) True where the element is a real weight or bias
    is_bias: torch.Tensor  # (n, c) True where the element is a bias
    item: torch.Tensor  # (n,) global item (layer) of each chunk


LAYER_COLUMNS = ("depth", "kind", "w", "b", "fan", "units", "bias_len")  # per layer of a net


def layout(groups: Sequence[tuple[Architecture, torch.Tensor]], chunk_size: int) -> ChunkLayout:
    """Describe a batch given as (architecture, flats (B_a, P_a)) groups; weights are not copied
    when there is a single group."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("net", *LAYER_COLUMNS)}
    buffers, offset, net = [], 0, 0
    device = torch.as_tensor(groups[0][1]).device if groups else torch.device("cpu")
    for arch, flats in groups:
        flats = torch.as_tensor(flats)
        if flats.dim() != 2 or flats.shape[1] != arch.n_params:
            raise ValueError(
                f"{arch.name} needs flats of shape (B, {arch.n_params}), got {tuple(flats.shape)}"
            )
        buffers.append(flats.reshape(-1))
        n, per_layer = flats.shape[0], _layer_columns(arch)  # per_layer[k]: (L,)
        n_layers = len(arch.layers)
        nets = torch.arange(net, net + n).repeat_interleave(n_layers)  # (n * L,)
        starts = offset + torch.arange(n).repeat_interleave(n_layers) * arch.n_params
        parts["net"].append(nets)
        for k, column in per_layer.items():
            parts[k].append(column.repeat(n) + (starts if k in ("w", "b") else 0))
        offset += n * arch.n_params
        net += n
    t = {k: (torch.cat(v) if v else torch.zeros(0, dtype=torch.int64)).to(device)
         for k, v in parts.items()}
    n_chunks = -(-(t["units"] * (t["fan"] + t["bias_len"])) // chunk_size)
    chunk_start = torch.cat([n_chunks.new_zeros(1), n_chunks.cumsum(0)])
    first_item = torch.searchsorted(t["net"], torch.arange(net + 1, device=device), side="left")
    return ChunkLayout(
        chunk_size=chunk_size,
        buffer=buffers[0] if len(buffers) == 1 else torch.cat(buffers),
        net=t["net"],
        depth=t["depth"],
        kind=t["kind"],
        weight_start=t["w"],
        bias_start=t["b"],
        fan=t["fan"],
        units=t["units"],
        bias_len=t["bias_len"],
        chunk_start=chunk_start,
        net_chunk_start=chunk_start[first_item],
        n_networks=net,
    )


def _layer_columns(arch: Architecture) -> dict[str, torch.Tensor]:
    """One network's per-layer columns of `layout` (each (L,) int64; w and b offsets within
    the network's flat vector)."""
    cols: dict[str, list[int]] = {k: [] for k in LAYER_COLUMNS}
    for depth, (layer, (s, w, _e)) in enumerate(zip(arch.layers, arch.offsets(), strict=True)):
        cols["depth"].append(depth)
        cols["kind"].append(KIND_IDS[layer.kind])
        cols["w"].append(s)
        cols["b"].append(w)
        cols["fan"].append(int(np.prod(layer.weight_shape[1:])))
        cols["units"].append(layer.fan_out)
        cols["bias_len"].append(math.prod(layer.bias_shape) // layer.fan_out)
    return {k: torch.tensor(v, dtype=torch.int64) for k, v in cols.items()}


def build_chunks(lay: ChunkLayout, start: int, end: int, pad_value: float = 0.0) -> Chunks:
    """Materialise global chunks [start, end): gather neuron-major weights, pad, mask.

    Padding gets `pad_value`; it is masked everywhere downstream, so its value must not matter.
    A unit's j-th bias (j < bias_len) sits at bias_start + j * units + unit: the column of a
    (tokens, D) patch-embedding bias, and bias_start + unit for every other kind.
    """
    c = lay.chunk_size
    device = lay.chunk_start.device
    cid = torch.arange(start, end, device=device)
    item = torch.searchsorted(lay.chunk_start, cid, right=True) - 1
    k = lay.chunk_k[cid] if lay.chunk_k is not None else cid - lay.chunk_start[item]
    pos = k[:, None] * c + torch.arange(c, device=device)  # positions in the layer
    fan, units = lay.fan[item][:, None], lay.units[item][:, None]
    row = fan + lay.bias_len[item][:, None]  # weights and biases per unit
    unit, j = pos // row, pos % row
    mask = unit < units
    is_bias = (j >= fan) & mask
    idx = torch.where(is_bias, lay.bias_start[item][:, None] + (j - fan) * units + unit,
                      lay.weight_start[item][:, None] + unit * fan + j)
    values = lay.buffer[torch.where(mask, idx, 0)]
    values = values.to(torch.promote_types(values.dtype, torch.float32))  # float64 stays
    values = torch.where(mask, values, torch.full_like(values, pad_value))
    return Chunks(values=values, mask=mask, is_bias=is_bias, item=item)


def subsample(
    lay: ChunkLayout, per_layer: int, generator: torch.Generator | None = None
) -> ChunkLayout:
    """The same batch with at most `per_layer` chunks of each layer, drawn without replacement
    (kept in layer order); used in training only, to make a step cheaper."""
    device = lay.chunk_start.device
    counts = lay.chunk_start[1:] - lay.chunk_start[:-1]
    n = lay.n_chunks
    item = torch.repeat_interleave(torch.arange(lay.n_items, device=device), counts)
    k = torch.arange(n, device=device) - lay.chunk_start[item]
    shuffled = torch.argsort(item.double() + torch.rand(n, generator=generator).to(device))
    rank = torch.arange(n, device=device) - lay.chunk_start[item[shuffled]]
    keep = shuffled[rank < per_layer].sort().values
    chunk_start = torch.cat([counts.new_zeros(1), counts.clamp(max=per_layer).cumsum(0)])
    first_item = torch.searchsorted(lay.net, torch.arange(lay.n_networks + 1, device=device))
    return replace(lay, chunk_start=chunk_start, net_chunk_start=chunk_start[first_item],
                   chunk_k=k[keep])


def plan_groups(seg_start: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Pack consecutive segments (bounds `seg_start`, in chunks) into groups of <= budget chunks.

    Returns (first segment, end segment) pairs; a segment larger than the budget is a group alone.
    """
    sizes = (seg_start[1:] - seg_start[:-1]).tolist()
    groups, lo, total = [], 0, 0
    for s, size in enumerate(sizes):
        if s > lo and total + size > budget:
            groups.append((lo, s))
            lo, total = s, 0
        total += size
    if sizes:
        groups.append((lo, len(sizes)))
    return groups
