"""Weight-space symmetries of zoo networks and the Logit Invariance penalty (Moskalev et al. 2023).

A transformation g permutes the hidden units of every layer but the last (dense units, conv
channels) and, for odd activations (tanh), flips the sign of some of them; the network's
function is unchanged, and SNE is trained to give g.w the same logit as w. Which tensor axes a
unit group moves (flatten blocks at a conv -> linear boundary included) and where sign flips
are allowed come from the architecture's own description, `Architecture.symmetry()`: this
module only samples group elements for a batch of networks and applies them with torch.

The newer kinds come with that description: sine units flip sign whatever the activation
(`UnitGroup.always_sign_flip`, through `Symmetry.sign_flips`), and a transformer's q/k and v/o
dimensions permute (and flip) independently inside each head (`UnitGroup.within`): for such a
group one permutation and one sign vector are drawn per head, applied after the heads' own
permutation, as `Symmetry.apply` defines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zoo_bench import Architecture, Symmetry, ZooFormatError


@dataclass(frozen=True)
class Transform:
    """One sampled g per network: per unit group, a permutation (n, units) and signs (n, units),
    or (n, outer units, units) for a group nested `within` another (one per outer unit)."""

    symmetry: Symmetry
    perms: tuple[torch.Tensor, ...]
    signs: tuple[torch.Tensor, ...]


def sample_transform(
    arch: Architecture, activations: Sequence[str], generator: torch.Generator | None = None
) -> Transform:
    """Draw one transformation per network (given by its activation) uniformly from its group."""
    sym = arch.symmetry()
    n = len(activations)
    flips = torch.tensor([sym.sign_flips(a) for a in activations], dtype=torch.bool)
    flips = flips.reshape(n, len(sym.groups))  # (n, groups): sign flips allowed
    perms, signs = [], []
    for k, group in enumerate(sym.groups):
        shape = (n, group.units) if group.within is None else (
            n, sym.groups[group.within].units, group.units)
        perms.append(torch.argsort(torch.rand(shape, generator=generator), dim=-1))
        allowed = flips[:, k].view(n, *[1] * (len(shape) - 1))
        flip = (torch.rand(shape, generator=generator) < 0.5) & allowed
        signs.append(1.0 - 2.0 * flip.to(torch.float32))
    return Transform(sym, tuple(perms), tuple(signs))


def apply_transform(arch: Architecture, flats: torch.Tensor, g: Transform) -> torch.Tensor:
    """g.w for flats (n, P): new unit o of a group is old unit perm[o] times sign[o], on every
    tensor axis the architecture's symmetry says that group moves; for a group nested in
    another, perm[r, o] and sign[r, o] inside outer unit r (the axis before), counted after the
    outer group's permutation."""
    flats = torch.as_tensor(flats)
    if flats.shape[-1] != arch.n_params:
        raise ZooFormatError(f"{arch.name} has {arch.n_params} parameters, got {flats.shape[-1]}")
    n, pos, parts = flats.shape[0], 0, []
    for t in g.symmetry.tensors:
        size = math.prod(t.shape)
        x = flats[:, pos : pos + size].reshape(n, *t.view_shape)  # (n, *view_shape)
        pos += size
        for axis, k in enumerate(t.axes):
            if k is None:
                continue
            shape = [n] + [1] * len(t.view_shape)
            if g.perms[k].dim() == 3:  # nested: (n, outer, units) on axes axis - 1, axis
                shape[axis : axis + 2] = g.perms[k].shape[1:]
            else:
                shape[axis + 1] = -1
            perm = g.perms[k].to(flats.device).view(shape).expand_as(x)
            x = x.gather(axis + 1, perm) * g.signs[k].to(flats.device, flats.dtype).view(shape)
        parts.append(x.reshape(n, -1))
    return torch.cat(parts, dim=1)


def logit_invariance_penalty(logits: torch.Tensor, logits_g: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the logits of w and of g.w."""
    return (logits - logits_g).pow(2).mean()
