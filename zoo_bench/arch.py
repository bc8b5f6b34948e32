"""Architectures: an ordered list of layer specs, their PyTorch shapes, and runnable modules.

A zoo stores each network as one flat float32 vector: for every layer in order, the weight
(PyTorch layout, C order) followed by the bias. Everything that turns such a vector back into
tensors or into a `torch.nn.Module` lives here, so every reader agrees on one layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zoo_bench.errors import ZooFormatError
from zoo_bench.symmetry import Symmetry, symmetry_of

LAYER_KINDS = ("conv2d", "linear")
POOLS = (None, "max2", "gap", "flatten")
ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "identity": lambda x: x,
}


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its kind, PyTorch weight/bias shapes and how its output is post-processed.

    `pool` is applied after the activation: "max2" (2x2 max-pool), "gap" (global average pool,
    then flatten), "flatten" (flatten only) or None. The last layer gets no activation.
    `pool_first` max-pools *before* the activation instead (Schürholt et al.'s CNNs do
    conv, pool, nonlinearity); it only matters for non-monotone activations such as GELU.
    """

    kind: str
    weight_shape: tuple[int, ...]
    bias_shape: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    pool: str | None = None
    pool_first: bool = False

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ZooFormatError(f"unknown layer kind {self.kind!r}; known kinds: {LAYER_KINDS}")
        if self.pool not in POOLS:
            raise ZooFormatError(f"unknown pool {self.pool!r}; known pools: {POOLS}")
        if self.pool_first and self.pool != "max2":
            raise ZooFormatError(f"pool_first needs pool 'max2', got {self.pool!r}")
        want = 4 if self.kind == "conv2d" else 2
        if len(self.weight_shape) != want:
            raise ZooFormatError(
                f"{self.kind} weight shape {self.weight_shape} must have {want} dimensions"
            )
        if tuple(self.bias_shape) != (self.weight_shape[0],):
            raise ZooFormatError(
                f"bias shape {self.bias_shape} does not match {self.weight_shape[0]} outputs"
            )

    @property
    def n_params(self) -> int:
        return math.prod(self.weight_shape) + math.prod(self.bias_shape)

    @property
    def fan_out(self) -> int:
        return self.weight_shape[0]

    @property
    def fan_in(self) -> int:
        return self.weight_shape[1]

    def to_dict(self) -> dict:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        if not self.pool_first:
            del d["pool_first"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LayerSpec:
        return cls(
            kind=d["kind"],
            weight_shape=tuple(d["weight_shape"]),
            bias_shape=tuple(d["bias_shape"]),
            stride=int(d.get("stride", 1)),
            padding=int(d.get("padding", 0)),
            pool=d.get("pool"),
            pool_first=bool(d.get("pool_first", False)),
        )


@dataclass(frozen=True)
class Architecture:
    """A named architecture: layers in order plus the input shape (C, H, W) it expects."""

    name: str
    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, ...]
    family: str = field(default="")

    def __post_init__(self) -> None:
        for a, b in zip(self.layers, self.layers[1:], strict=False):
            if a.kind == "conv2d" and b.kind == "conv2d" and a.fan_out != b.fan_in:
                raise ZooFormatError(f"{self.name}: conv {a.weight_shape} feeds {b.weight_shape}")
            if a.kind == "linear" and b.kind == "linear" and a.fan_out != b.fan_in:
                raise ZooFormatError(f"{self.name}: linear {a.weight_shape} feeds {b.weight_shape}")

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].fan_out

    def conv_shapes(self) -> list[tuple[int, int, int]]:
        """Output (C, H, W) of each leading conv layer, before its pooling, for one example."""
        shapes, (h, w) = [], self.input_shape[1:]
        for la in self.layers:
            if la.kind != "conv2d":
                break
            kh, kw = la.weight_shape[2:]
            h = (h + 2 * la.padding - kh) // la.stride + 1
            w = (w + 2 * la.padding - kw) // la.stride + 1
            shapes.append((la.fan_out, h, w))
            if la.pool == "max2":
                h, w = h // 2, w // 2
        return shapes

    def symmetry(self) -> Symmetry:
        """Which axes of which tensors permute together (hidden units), which may flip sign, and
        the flatten blocks at a conv -> linear boundary: see `zoo_bench.symmetry`."""
        return symmetry_of(self)

    def offsets(self) -> list[tuple[int, int, int]]:
        """(weight start, bias start, end) of each layer inside the flat vector."""
        out, pos = [], 0
        for layer in self.layers:
            w = pos + math.prod(layer.weight_shape)
            end = w + math.prod(layer.bias_shape)
            out.append((pos, w, end))
            pos = end
        return out

    def unflatten(self, flat: torch.Tensor | np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Split flat vectors of shape (P,) or (B, P) into per-layer (weight, bias) tensors."""
        t = torch.as_tensor(flat)
        if t.shape[-1] != self.n_params:
            raise ZooFormatError(
                f"{self.name} has {self.n_params} parameters, got a vector of {t.shape[-1]}"
            )
        lead = t.shape[:-1]
        return [
            (
                t[..., s:w].reshape(*lead, *layer.weight_shape),
                t[..., w:e].reshape(*lead, *layer.bias_shape),
            )
            for layer, (s, w, e) in zip(self.layers, self.offsets(), strict=True)
        ]

    def flatten(self, params: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Inverse of `unflatten` (batched or not)."""
        parts = []
        for (w, b), layer in zip(params, self.layers, strict=True):
            lead = w.shape[: w.dim() - len(layer.weight_shape)]
            parts += [w.reshape(*lead, -1), b.reshape(*lead, -1)]
        return torch.cat(parts, dim=-1)

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "input_shape": list(self.input_shape),
            "n_params": self.n_params,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, name: str, d: dict) -> Architecture:
        arch = cls(
            name=name,
            layers=tuple(LayerSpec.from_dict(x) for x in d["layers"]),
            input_shape=tuple(d["input_shape"]),
            family=d.get("family", ""),
        )
        if "n_params" in d and int(d["n_params"]) != arch.n_params:
            raise ZooFormatError(
                f"architecture {name}: manifest says {d['n_params']} parameters, "
                f"its layers hold {arch.n_params}"
            )
        return arch


def functional_forward(
    arch: Architecture,
    params: Sequence[tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    activation: str,
    dropout: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Run one network given its per-layer (weight, bias): the single definition of the forward.

    Works under `torch.func.vmap` (batched trainers) as well as on plain tensors.
    """
    act = ACTIVATIONS[activation]
    last = len(arch.layers) - 1
    for i, (layer, (w, b)) in enumerate(zip(arch.layers, params, strict=True)):
        if layer.kind == "conv2d":
            x = F.conv2d(x, w, b, stride=layer.stride, padding=layer.padding)
        else:
            x = F.linear(x, w, b)
        if i == last:
            break
        if layer.pool_first:
            x = F.max_pool2d(x, 2)
        x = act(x)
        if dropout > 0 and training:
            x = F.dropout(x, dropout, training=True)
        if layer.pool == "max2" and not layer.pool_first:
            x = F.max_pool2d(x, 2)
        elif layer.pool == "gap":
            x = x.mean(dim=(-2, -1))
        elif layer.pool == "flatten":
            x = x.flatten(start_dim=-3)
    return x


class ZooNetwork(nn.Module):
    """A runnable member of a zoo: real `nn.Parameter`s and the architecture's forward."""

    def __init__(self, arch: Architecture, flat: np.ndarray | torch.Tensor, activation: str):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ZooFormatError(
                f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}"
            )
        self.arch = arch
        self.activation = activation
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for w, b in arch.unflatten(torch.as_tensor(np.array(flat, dtype=np.float32))):
            self.weights.append(nn.Parameter(w.clone()))
            self.biases.append(nn.Parameter(b.clone()))

    def params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(zip(self.weights, self.biases, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_forward(self.arch, self.params(), x, self.activation)
