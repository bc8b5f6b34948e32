"""Weight-space symmetries of zoo networks and the Logit Invariance penalty (Moskalev et al. 2023).

A transformation g permutes the hidden units of every layer but the last (dense units, conv
channels) and, for odd activations (tanh), flips the sign of some of them. The unit's incoming
weights and bias move with it, and so do its outgoing weights: the next layer's input columns,
in blocks of H*W when a conv layer is flattened into a dense one (C-order flatten), one column
per channel after global average pooling. The network's function is unchanged; SNE is trained
to give g.w the same logit as w.

Sign flips are only a symmetry where the pooling after the activation commutes with negation:
max-pooling does not (max(-x) != -max(x)), so units followed by "max2" are only permuted.
A layer whose next layer's input does not match one of these patterns is left fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zoo_bench.arch import Architecture

ODD_ACTIVATIONS = ("tanh",)


@dataclass(frozen=True)
class HiddenLayer:
    """A layer whose output units may be permuted (and sign-flipped, see `odd_ok`)."""

    index: int  # layer index in the architecture
    units: int  # output units (channels)
    block: int  # next layer's input columns per unit
    odd_ok: bool  # sign flips allowed when the activation is odd (pooling commutes with -x)


def hidden_layers(arch: Architecture) -> list[HiddenLayer]:
    """The layers of `arch` that a symmetry transformation acts on."""
    out = []
    for i, (layer, nxt) in enumerate(zip(arch.layers, arch.layers[1:], strict=False)):
        if nxt.kind == "conv2d" or layer.kind == "linear" or layer.pool == "gap":
            block = 1 if nxt.fan_in == layer.fan_out else 0
        elif layer.pool == "flatten" and nxt.fan_in % layer.fan_out == 0:
            block = nxt.fan_in // layer.fan_out
        else:
            block = 0
        if block:
            out.append(HiddenLayer(i, layer.fan_out, block, layer.pool != "max2"))
    return out


@dataclass(frozen=True)
class Transform:
    """One sampled g per network: a permutation (n, units) and signs (n, units) per hidden layer."""

    layers: tuple[HiddenLayer, ...]
    perms: tuple[torch.Tensor, ...]
    signs: tuple[torch.Tensor, ...]


def sample_transform(
    arch: Architecture, activations: Sequence[str], generator: torch.Generator | None = None
) -> Transform:
    """Draw one transformation per network (given by its activation) uniformly from its group."""
    layers = tuple(hidden_layers(arch))
    n = len(activations)
    odd = torch.tensor([a in ODD_ACTIVATIONS for a in activations], dtype=torch.bool)[:, None]
    perms, signs = [], []
    for h in layers:
        perms.append(torch.argsort(torch.rand(n, h.units, generator=generator), dim=1))
        flip = (torch.rand(n, h.units, generator=generator) < 0.5) & odd & h.odd_ok
        signs.append(1.0 - 2.0 * flip.to(torch.float32))
    return Transform(layers, tuple(perms), tuple(signs))


def apply_transform(arch: Architecture, flats: torch.Tensor, g: Transform) -> torch.Tensor:
    """g.w for flats (n, P): new unit o of a hidden layer is old unit perm[o] times sign[o]."""
    flats = torch.as_tensor(flats)
    params = [[w, b] for w, b in arch.unflatten(flats)]
    for h, perm, sign in zip(g.layers, g.perms, g.signs, strict=True):
        perm, sign = perm.to(flats.device), sign.to(flats.device)
        w, b = params[h.index]
        rows = perm.view(*perm.shape, *([1] * (w.dim() - 2))).expand_as(w)
        params[h.index][0] = w.gather(1, rows) * sign.view(*sign.shape, *([1] * (w.dim() - 2)))
        params[h.index][1] = b.gather(1, perm) * sign
        nw = params[h.index + 1][0]
        cols = (perm[:, :, None] * h.block + torch.arange(h.block, device=flats.device)).flatten(1)
        col_sign = sign.repeat_interleave(h.block, dim=1)
        shape = (nw.shape[0], 1, nw.shape[2], *([1] * (nw.dim() - 3)))
        idx = cols.view(shape).expand_as(nw)
        params[h.index + 1][0] = nw.gather(2, idx) * col_sign.view(shape)
    return arch.flatten([(w, b) for w, b in params])


def logit_invariance_penalty(logits: torch.Tensor, logits_g: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the logits of w and of g.w."""
    return (logits - logits_g).pow(2).mean()
