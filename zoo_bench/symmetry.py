"""Weight-space symmetry of an architecture: which tensor axes permute together (pure NumPy).

Permuting the hidden units of a layer (dense units, conv channels) together with the next
layer's matching inputs leaves the network's function unchanged; for odd activations (tanh)
so does flipping a unit's sign. `symmetry_of(arch)` (also `Architecture.symmetry()`) describes
this group once, for every reader: SNE's augmentation, equivariant encoders such as nfn's.

The description, per weight and bias tensor in flat-vector order:

- `view_shape`: the tensor's PyTorch shape with any flatten block made explicit. A linear
  layer after a conv layer flattened in C order reads C channels x (H*W) positions, so its
  weight (out, C*H*W) is viewed as (out, C, H*W): channel c owns columns c*H*W .. c*H*W+H*W-1.
  After global average pooling (or between conv layers, or dense layers) the block is 1 and
  the view equals the PyTorch shape.
- `axes`: for each axis of the view, the index of the unit group that permutes it, or None.
  Weight axis 0 (outputs) and bias axis 0 belong to the layer's own group; weight axis 1
  (inputs) to the previous layer's group. The input layer's inputs and the last layer's
  outputs belong to no group (fixed). Kernel taps and flatten positions are never permuted.

`UnitGroup.odd_sign_flip` says whether the group's units may also flip sign when the network's
activation is odd (`ODD_ACTIVATIONS`; the activation is per network, not per architecture).
That holds unless the layer max-pools (before or after the activation): max(-x) != -max(x).

The newer kinds (`zoo_bench.arch`): a `sine` layer's units permute like dense units and may
always flip sign (sin is odd; `UnitGroup.always_sign_flip`), whatever the network's activation.
A Vision Transformer has, per block, its MLP's hidden units (sign flips for odd activations),
its attention heads, and within each head the query/key dimensions (shared by q and k) and the
value/output dimensions (shared by v and o's inputs); q, k and v are viewed (heads, e, D), o as
(D, heads, e). Within-head groups carry `within` = the heads group: their permutation (and sign)
may differ from head to head (`sample` draws (heads, e) arrays); a reader that draws one (e,)
permutation for all heads still gets a symmetry, of a smaller group. Their sign flips are always
allowed (q_i k_i and v_i o_:i keep their products). The residual stream's D coordinates also
permute (every tensor that reads or writes it, layer norms included); they never flip sign.

The views are exactly what an nfn-style `NetworkSpec` takes: `weight_spec` is each weight's
`view_shape` (n_out, n_in, *taps), `bias_spec` each bias's (see `Symmetry.nfn_shapes`); a
flatten block then enters as extra taps, as nfn expects conv kernels to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from zoo_bench.errors import ZooFormatError

ODD_ACTIVATIONS = ("tanh", "sine")
TRANSFORMER_BLOCK = 8  # layers per transformer block (see zoo_bench.arch.BLOCK)


class ArchitectureLike(Protocol):
    """What the description reads from an architecture (`zoo_bench.Architecture` has it)."""

    name: str
    layers: Sequence[Any]  # LayerSpec: kind, weight_shape, bias_shape, fan_in, fan_out, pool

    def conv_shapes(self) -> list[tuple[int, int, int]]: ...


@dataclass(frozen=True)
class UnitGroup:
    """The hidden units of one layer: permuted together (and sign-flipped, see `odd_sign_flip`).

    `block` is how many consecutive input columns of the next layer each unit owns (H*W at a
    conv -> linear flatten, else 1). `always_sign_flip`: sign flips are symmetries whatever the
    network's activation (sine units, attention dimensions). `within`: the index of a group
    (attention heads) whose every unit holds its own copy of this group's units; each tensor
    axis this group moves comes right after an axis of that group.
    """

    layer: int
    units: int
    block: int
    odd_sign_flip: bool
    always_sign_flip: bool = False
    within: int | None = None


@dataclass(frozen=True)
class TensorSymmetry:
    """How the group acts on one tensor: view it as `view_shape`; axis k moves with `axes[k]`."""

    layer: int
    param: str  # "weight" or "bias"
    shape: tuple[int, ...]  # PyTorch shape, as stored
    view_shape: tuple[int, ...]  # same elements, flatten blocks made explicit
    axes: tuple[int | None, ...]  # per view axis: index into Symmetry.groups, or None (fixed)


@dataclass(frozen=True)
class Symmetry:
    """The hidden-unit permutation (and sign-flip) group of one architecture."""

    arch: str
    groups: tuple[UnitGroup, ...]
    tensors: tuple[TensorSymmetry, ...]  # weight, bias of layer 0, weight, bias of layer 1, ...

    def sign_flips(self, activation: str) -> tuple[bool, ...]:
        """Per group: whether sign flips are symmetries of a network with this activation."""
        odd = activation in ODD_ACTIVATIONS
        return tuple((odd and g.odd_sign_flip) or g.always_sign_flip for g in self.groups)

    def nfn_shapes(self) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        """(weight shapes, bias shapes) for an nfn `NetworkSpec` (`ArraySpec(shape)` each)."""
        weights = [t.view_shape for t in self.tensors if t.param == "weight"]
        biases = [t.view_shape for t in self.tensors if t.param == "bias"]
        return weights, biases

    def sample(
        self, rng: np.random.Generator, activation: str = "relu"
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One group element, drawn uniformly: per group a permutation (units,) and signs
        (units,); (units of `within`, units) arrays for a group nested in another."""
        flips = self.sign_flips(activation)

        def shape(g: UnitGroup) -> tuple[int, ...]:
            return (g.units,) if g.within is None else (self.groups[g.within].units, g.units)

        perms = [
            rng.permutation(g.units) if g.within is None
            else np.stack([rng.permutation(g.units) for _ in range(shape(g)[0])])
            for g in self.groups
        ]
        signs = [
            np.where(rng.random(shape(g)) < 0.5, -1.0, 1.0) if flip else np.ones(shape(g))
            for g, flip in zip(self.groups, flips, strict=True)
        ]
        return perms, signs

    def apply(
        self, flat: np.ndarray, perms: Sequence[np.ndarray], signs: Sequence[np.ndarray]
    ) -> np.ndarray:
        """g.w for one flat vector (P,): new unit o of group k is old unit perms[k][o] times
        signs[k][o], on every tensor axis the group moves. For a group nested in another, a
        (outer units, units) array applies row r inside outer unit r, counted after the outer
        permutation: new (r, o) is old (outer perm[r], perms[k][r, o])."""
        flat = np.asarray(flat)
        n_params = sum(int(np.prod(t.shape)) for t in self.tensors)
        if flat.shape != (n_params,):
            raise ZooFormatError(f"{self.arch} has {n_params} parameters, got shape {flat.shape}")
        out, pos = [], 0
        for t in self.tensors:
            n = int(np.prod(t.shape))
            x = flat[pos : pos + n].reshape(t.view_shape)
            pos += n
            for axis, k in enumerate(t.axes):
                if k is None:
                    continue
                perm = np.asarray(perms[k])
                sign = np.broadcast_to(np.asarray(signs[k], dtype=x.dtype), perm.shape)
                bcast = [1] * x.ndim
                if perm.ndim == 2:  # one permutation per unit of the outer group
                    bcast[axis - 1 : axis + 1] = perm.shape
                    x = np.take_along_axis(x, perm.reshape(bcast), axis=axis)
                else:
                    bcast[axis] = -1
                    x = np.take(x, perm, axis=axis)
                x = x * sign.reshape(bcast)
            out.append(x.reshape(-1))
        return np.concatenate(out)


def _block(arch: ArchitectureLike, i: int) -> int:
    """Input columns of layer i+1 per output unit of layer i (their wiring), or raise."""
    layer, nxt = arch.layers[i], arch.layers[i + 1]
    if layer.kind in ("linear", "sine") or nxt.kind == "conv2d" or layer.pool == "gap":
        block = 1
    elif layer.pool == "flatten":
        _, h, w = arch.conv_shapes()[i]
        block = h * w
    else:
        raise ZooFormatError(
            f"{arch.name}: conv layer {i} feeds linear layer {i + 1} without 'gap' or 'flatten'; "
            "set the conv layer's pool"
        )
    if nxt.fan_in != layer.fan_out * block:
        raise ZooFormatError(
            f"{arch.name}: layer {i + 1} reads {nxt.fan_in} inputs, but layer {i} gives "
            f"{layer.fan_out} units x {block}; fix the weight shapes"
        )
    return block


def symmetry_of(arch: ArchitectureLike) -> Symmetry:
    """The symmetry description of `arch` (module docstring); raises on wiring it cannot read."""
    if arch.layers[0].kind == "patch_embed":
        return _transformer_symmetry(arch)
    last = len(arch.layers) - 1
    groups = tuple(
        UnitGroup(i, layer.fan_out, _block(arch, i), odd_sign_flip=layer.pool != "max2",
                  always_sign_flip=layer.kind == "sine")
        for i, layer in enumerate(arch.layers[:last])
    )
    tensors = []
    for i, layer in enumerate(arch.layers):
        own = i if i < last else None
        prev = i - 1 if i > 0 else None
        w_view = tuple(layer.weight_shape)
        if prev is not None and groups[prev].block > 1:
            w_view = (w_view[0], groups[prev].units, groups[prev].block, *w_view[2:])
        w_axes = (own, prev, *([None] * (len(w_view) - 2)))
        tensors.append(TensorSymmetry(i, "weight", tuple(layer.weight_shape), w_view, w_axes))
        b = tuple(layer.bias_shape)
        tensors.append(TensorSymmetry(i, "bias", b, b, (own,)))
    return Symmetry(arch.name, groups, tuple(tensors))


def _transformer_symmetry(arch: ArchitectureLike) -> Symmetry:
    """Residual stream, and per block heads, q/k and v/o dimensions within heads, MLP units
    (module docstring). The architecture has passed `Architecture`'s layout check."""
    layers = arch.layers
    d = layers[0].fan_out
    groups = [UnitGroup(0, d, 1, odd_sign_flip=False)]  # group 0: the residual stream
    tensors: list[TensorSymmetry] = []

    def add(i: int, w_view: tuple[int, ...], w_axes: tuple, b_view: tuple[int, ...],
            b_axes: tuple) -> None:
        la = layers[i]
        tensors.append(TensorSymmetry(i, "weight", tuple(la.weight_shape), w_view, w_axes))
        tensors.append(TensorSymmetry(i, "bias", tuple(la.bias_shape), b_view, b_axes))

    embed = layers[0]
    add(0, tuple(embed.weight_shape), (0, None, None, None), tuple(embed.bias_shape), (None, 0))
    for start in range(1, len(layers) - 2, TRANSFORMER_BLOCK):
        q, v, m = layers[start + 1], layers[start + 3], layers[start + 6]
        h = q.heads
        heads = len(groups)
        groups.append(UnitGroup(start + 1, h, 1, odd_sign_flip=False))
        qk, vo, mlp = heads + 1, heads + 2, heads + 3
        groups.append(UnitGroup(start + 1, q.fan_out // h, 1, odd_sign_flip=False,
                                always_sign_flip=True, within=heads))
        groups.append(UnitGroup(start + 3, v.fan_out // h, 1, odd_sign_flip=False,
                                always_sign_flip=True, within=heads))
        groups.append(UnitGroup(start + 6, m.fan_out, 1, odd_sign_flip=True))
        eq, ev = q.fan_out // h, v.fan_out // h
        add(start, (d,), (0,), (d,), (0,))  # layernorm
        for i, (e, g) in zip(range(start + 1, start + 4), ((eq, qk), (eq, qk), (ev, vo)),
                             strict=True):
            add(i, (h, e, d), (heads, g, 0), (h, e), (heads, g))
        add(start + 4, (d, h, ev), (0, heads, vo), (d,), (0,))  # attn_o
        add(start + 5, (d,), (0,), (d,), (0,))  # layernorm
        add(start + 6, (m.fan_out, d), (mlp, 0), (m.fan_out,), (mlp,))  # mlp_in
        add(start + 7, (d, m.fan_out), (0, mlp), (d,), (0,))  # mlp_out
    add(len(layers) - 2, (d,), (0,), (d,), (0,))  # final layernorm
    n_out = layers[-1].fan_out
    add(len(layers) - 1, (n_out, d), (None, 0), (n_out,), (None,))  # head: logits fixed
    return Symmetry(arch.name, tuple(groups), tuple(tensors))
