"""Architectures: an ordered list of layer specs, their PyTorch shapes, and runnable modules.

A zoo stores each network as one flat float32 vector: for every layer in order, the weight
(PyTorch layout, C order) followed by the bias. Everything that turns such a vector back into
tensors or into a `torch.nn.Module` lives here, so every reader agrees on one layout.

Three shapes of architecture share that layout (every layer is one weight and one bias):

- chains of `conv2d` / `linear` layers (format 1, the CNN zoos), each followed by the network's
  activation and an optional pool;
- INRs: chains whose hidden layers are `sine` layers, sin(omega_0 * (W x + b)) (SIREN);
- Vision Transformers (pre-norm): `patch_embed`, then per block `layernorm, attn_q, attn_k,
  attn_v, attn_o, layernorm, mlp_in, mlp_out` (residual adds after `attn_o` and `mlp_out`),
  a final `layernorm` whose `pool` is "cls" or "mean", and a `linear` head. `patch_embed`'s
  weight is the patch projection (Conv2d layout (D, C, p, p), stride p); its bias (T, D) is the
  input embedding of each token: row 0 the class token (pool "cls") and then one row per patch
  (row-major). A usual ViT's conv bias, class token and position embedding add up to exactly
  one free vector per token, so they are stored as that sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zoo_bench.errors import ZooFormatError
from zoo_bench.symmetry import Symmetry, symmetry_of

LAYER_KINDS = ("conv2d", "linear")  # the chain kinds of format 1 (statnn's layout is sized by it)
INR_KINDS = ("sine",)
TRANSFORMER_KINDS = (
    "patch_embed", "layernorm", "attn_q", "attn_k", "attn_v", "attn_o", "mlp_in", "mlp_out",
)
ALL_LAYER_KINDS = LAYER_KINDS + INR_KINDS + TRANSFORMER_KINDS
DENSE_KINDS = ("linear", "sine")  # read a vector, write a vector of weight_shape[0] units
ATTENTION_KINDS = ("attn_q", "attn_k", "attn_v", "attn_o")
BLOCK = ("layernorm", "attn_q", "attn_k", "attn_v", "attn_o", "layernorm", "mlp_in", "mlp_out")
POOLS = (None, "max2", "gap", "flatten")
TOKEN_POOLS = ("cls", "mean")  # a transformer's final layernorm: class token or token mean
LN_EPS = 1e-5  # layer norm epsilon of every `layernorm` layer (torch.nn.LayerNorm's default)
ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "identity": lambda x: x,
    "sine": torch.sin,
}


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its kind, PyTorch weight/bias shapes and how its output is post-processed.

    `pool` is applied after the activation: "max2" (2x2 max-pool), "gap" (global average pool,
    then flatten), "flatten" (flatten only) or None. The last layer gets no activation.
    `pool_first` max-pools *before* the activation instead (Schürholt et al.'s CNNs do
    conv, pool, nonlinearity); it only matters for non-monotone activations such as GELU.

    The newer kinds (module docstring) add two fields: `omega_0` (a `sine` layer's frequency
    factor) and `heads` (the attention heads of every `attn_*` layer; they split the q/k/v rows
    and the o columns into equal head blocks). A transformer's final `layernorm` has pool "cls"
    or "mean". Shapes per kind (D model width, E q/k or v width, M MLP width, T tokens):
    sine (out, in) (out,); patch_embed (D, C, p, p) (T, D) with stride p; layernorm (D,) (D,);
    attn_q / attn_k / attn_v (E, D) (E,); attn_o (D, E) (D,); mlp_in (M, D) (M,);
    mlp_out (D, M) (D,).
    """

    kind: str
    weight_shape: tuple[int, ...]
    bias_shape: tuple[int, ...]
    stride: int = 1
    padding: int = 0
    pool: str | None = None
    pool_first: bool = False
    heads: int | None = None
    omega_0: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ALL_LAYER_KINDS:
            raise ZooFormatError(
                f"unknown layer kind {self.kind!r}; known kinds: {ALL_LAYER_KINDS}"
            )
        if any(not isinstance(n, (int, np.integer)) or n < 1
               for n in (*self.weight_shape, *self.bias_shape)):
            raise ZooFormatError(
                f"{self.kind} shapes {self.weight_shape} / {self.bias_shape} must hold positive "
                "integers"
            )
        pools = TOKEN_POOLS + (None,) if self.kind == "layernorm" else (
            POOLS if self.kind in LAYER_KINDS else (None,)
        )
        if self.pool not in pools:
            raise ZooFormatError(
                f"{self.kind} layer: unknown pool {self.pool!r}; known pools for it: {pools}"
            )
        if self.pool_first and self.pool != "max2":
            raise ZooFormatError(f"pool_first needs pool 'max2', got {self.pool!r}")
        if (self.heads is not None) != (self.kind in ATTENTION_KINDS):
            raise ZooFormatError(
                f"{self.kind} layer: heads is set exactly on attention layers {ATTENTION_KINDS}, "
                f"got heads={self.heads!r}"
            )
        if (self.omega_0 is not None) != (self.kind == "sine"):
            raise ZooFormatError(
                f"{self.kind} layer: omega_0 is set exactly on sine layers, "
                f"got omega_0={self.omega_0!r}"
            )
        want = 4 if self.kind in ("conv2d", "patch_embed") else 1 if self.kind == "layernorm" else 2
        if len(self.weight_shape) != want:
            raise ZooFormatError(
                f"{self.kind} weight shape {self.weight_shape} must have {want} dimensions"
            )
        if self.kind == "patch_embed":
            self._check_patch_embed()
        elif tuple(self.bias_shape) != (self.weight_shape[0],):
            raise ZooFormatError(
                f"{self.kind} bias shape {self.bias_shape} does not match "
                f"{self.weight_shape[0]} outputs"
            )
        if self.kind == "sine" and not (math.isfinite(self.omega_0) and self.omega_0 > 0):
            raise ZooFormatError(
                f"sine layer: omega_0 must be a positive number, got {self.omega_0}"
            )
        if self.heads is not None:
            width = self.weight_shape[1] if self.kind == "attn_o" else self.weight_shape[0]
            ok = isinstance(self.heads, (int, np.integer)) and self.heads >= 1
            if not ok or width % self.heads:
                raise ZooFormatError(
                    f"{self.kind} layer: {self.heads} heads do not divide its {width} "
                    "attention units; choose heads that divide the width"
                )

    def _check_patch_embed(self) -> None:
        d, _, kh, kw = self.weight_shape
        if kh != kw or self.stride != kh or self.padding:
            raise ZooFormatError(
                f"patch_embed weight {self.weight_shape}, stride {self.stride}, padding "
                f"{self.padding}: patches are square and do not overlap (stride = patch size, "
                "padding 0)"
            )
        if len(self.bias_shape) != 2 or self.bias_shape[1] != d:
            raise ZooFormatError(
                f"patch_embed bias shape {self.bias_shape} must be (tokens, {d}): one input "
                "embedding per token"
            )

    @property
    def n_params(self) -> int:
        return math.prod(self.weight_shape) + math.prod(self.bias_shape)

    @property
    def fan_out(self) -> int:
        return self.weight_shape[0]

    @property
    def fan_in(self) -> int:
        """Inputs per output unit (input channels for convolutions; D for a layernorm)."""
        return self.weight_shape[1] if len(self.weight_shape) > 1 else self.weight_shape[0]

    def to_dict(self) -> dict:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        for key, default in (("pool_first", False), ("heads", None), ("omega_0", None)):
            if d[key] == default:  # format-1 manifests stay byte-for-byte as they were
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LayerSpec:
        try:
            return cls(
                kind=d["kind"],
                weight_shape=tuple(d["weight_shape"]),
                bias_shape=tuple(d["bias_shape"]),
                stride=int(d.get("stride", 1)),
                padding=int(d.get("padding", 0)),
                pool=d.get("pool"),
                pool_first=bool(d.get("pool_first", False)),
                heads=d.get("heads"),
                omega_0=None if d.get("omega_0") is None else float(d["omega_0"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ZooFormatError(
                f"layer {d!r} is malformed ({type(e).__name__}: {e}); it needs kind, "
                "weight_shape and bias_shape"
            ) from None


@dataclass(frozen=True)
class Architecture:
    """A named architecture: layers in order plus the input shape it expects per example:
    (C, H, W) images, or (in_features,) coordinates for an INR."""

    name: str
    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, ...]
    family: str = field(default="")

    def __post_init__(self) -> None:
        if not self.layers:
            raise ZooFormatError(f"{self.name}: an architecture needs at least one layer")
        if self.transformer:
            self._check_transformer()
            return
        for i, (a, b) in enumerate(zip(self.layers, self.layers[1:], strict=False)):
            if a.kind == "conv2d" and b.kind == "conv2d" and a.fan_out != b.fan_in:
                raise ZooFormatError(f"{self.name}: conv {a.weight_shape} feeds {b.weight_shape}")
            if a.kind in DENSE_KINDS and b.kind in DENSE_KINDS and a.fan_out != b.fan_in:
                raise ZooFormatError(
                    f"{self.name}: {a.kind} {a.weight_shape} feeds {b.kind} {b.weight_shape}"
                )
            if a.kind == "sine" and b.kind == "conv2d":
                raise ZooFormatError(
                    f"{self.name}: layer {i + 1} is a conv2d after a sine layer; "
                    "convolutions come first"
                )
        if self.layers[-1].kind == "sine":
            raise ZooFormatError(
                f"{self.name}: the last layer is a sine layer; end an INR with a linear layer"
            )

    @property
    def transformer(self) -> bool:
        """Whether this is a Vision Transformer (its layers include transformer kinds)."""
        return any(la.kind in TRANSFORMER_KINDS for la in self.layers)

    def tokens(self) -> tuple[int, int]:
        """A transformer's (patches, tokens): tokens = patches + 1 with a class token."""
        if not self.transformer:
            raise ZooFormatError(f"{self.name} is not a transformer: it has no tokens")
        _, h, w = self.input_shape
        p = self.layers[0].weight_shape[2]
        n = (h // p) * (w // p)
        return n, n + (self.layers[-2].pool == "cls")

    def _check_transformer(self) -> None:
        """The transformer layout of the module docstring, or a ZooFormatError saying where not."""
        la, name = self.layers, self.name
        grammar = (
            "patch_embed, then blocks of (layernorm, attn_q, attn_k, attn_v, attn_o, "
            "layernorm, mlp_in, mlp_out), then layernorm (pool 'cls' or 'mean') and linear"
        )
        body = la[1:-2]
        n_blocks = -(-len(body) // len(BLOCK))  # rounded up: a cut-short block is named
        want = ("patch_embed", *BLOCK * n_blocks, "layernorm", "linear")
        got = tuple(x.kind for x in la)
        if len(body) % len(BLOCK) or got != want:
            i = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                     min(len(got), len(want)))
            raise ZooFormatError(
                f"{name}: layer {i} is {got[i] if i < len(got) else 'missing'}, expected "
                f"{want[i] if i < len(want) else 'no layer'}; a transformer is {grammar}"
            )
        embed, norm, head = la[0], la[-2], la[-1]
        if len(self.input_shape) != 3 or self.input_shape[0] != embed.fan_in:
            raise ZooFormatError(
                f"{name}: input shape {self.input_shape} must be (C, H, W) with "
                f"C = {embed.fan_in}, the patch embedding's input channels"
            )
        p, (_, h, w) = embed.weight_shape[2], self.input_shape
        if h % p or w % p:
            raise ZooFormatError(f"{name}: {h}x{w} images do not split into {p}x{p} patches")
        if norm.pool is None:
            raise ZooFormatError(f"{name}: the final layernorm needs pool 'cls' or 'mean'")
        d = embed.fan_out
        n, t = self.tokens()
        if embed.bias_shape != (t, d):
            raise ZooFormatError(
                f"{name}: patch_embed bias {embed.bias_shape} must be ({t}, {d}): "
                f"{n} patches{' and a class token' if t > n else ''} of width {d}"
            )
        for j in range(len(body) // len(BLOCK)):
            self._check_block(1 + j * len(BLOCK), d)
        self._expect(len(la) - 2, (d,), (d,))
        self._expect(len(la) - 1, (head.fan_out, d), (head.fan_out,))

    def _check_block(self, i: int, d: int) -> None:
        """Shapes of the transformer block starting at layer i, in a residual stream of width d."""
        ln1, q, k, v, o, ln2, m1, m2 = self.layers[i : i + len(BLOCK)]
        e, ev, m = q.fan_out, v.fan_out, m1.fan_out
        shapes = (
            ((d,), (d,)), ((e, d), (e,)), ((e, d), (e,)), ((ev, d), (ev,)), ((d, ev), (d,)),
            ((d,), (d,)), ((m, d), (m,)), ((d, m), (d,)),
        )
        for offset, (w, b) in enumerate(shapes):
            self._expect(i + offset, w, b)
        if len({q.heads, k.heads, v.heads, o.heads}) != 1:
            raise ZooFormatError(
                f"{self.name}: attention layers {i + 1}..{i + 4} disagree on heads "
                f"({q.heads}, {k.heads}, {v.heads}, {o.heads})"
            )
        if ln1.pool is not None or ln2.pool is not None:
            raise ZooFormatError(f"{self.name}: only the final layernorm pools (block at {i})")

    def _expect(self, i: int, weight: tuple[int, ...], bias: tuple[int, ...]) -> None:
        la = self.layers[i]
        if la.weight_shape != weight or la.bias_shape != bias:
            raise ZooFormatError(
                f"{self.name}: layer {i} ({la.kind}) has weight {la.weight_shape} and bias "
                f"{la.bias_shape}; its place in the transformer needs {weight} and {bias}"
            )

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].fan_out

    def conv_shapes(self) -> list[tuple[int, int, int]]:
        """Output (C, H, W) of each leading conv layer, before its pooling, for one example;
        empty for a network that does not start with a conv layer (MLP, ViT, SIREN)."""
        if not self.layers or self.layers[0].kind != "conv2d":
            return []
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

    Works under `torch.func.vmap` (batched trainers) as well as on plain tensors. Inputs are
    (B, *arch.input_shape): images (B, C, H, W), or coordinates (B, in_features) for an INR.
    """
    act = ACTIVATIONS[activation]
    if arch.transformer:
        return _transformer_forward(arch, params, x, act, dropout, training)
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
        x = torch.sin(layer.omega_0 * x) if layer.kind == "sine" else act(x)
        if dropout > 0 and training:
            x = F.dropout(x, dropout, training=True)
        if layer.pool == "max2" and not layer.pool_first:
            x = F.max_pool2d(x, 2)
        elif layer.pool == "gap":
            x = x.mean(dim=(-2, -1))
        elif layer.pool == "flatten":
            x = x.flatten(start_dim=-3)
    return x


def _transformer_forward(
    arch: Architecture,
    params: Sequence[tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor],
    dropout: float,
    training: bool,
) -> torch.Tensor:
    """Pre-norm ViT forward (module docstring); x (B, C, H, W) -> logits (B, n_classes)."""
    embed = arch.layers[0]
    w, b = params[0]
    x = F.conv2d(x, w, stride=embed.stride)  # (B, D, H/p, W/p)
    x = x.flatten(start_dim=-2).transpose(-1, -2)  # (B, N, D), patches row-major
    if arch.layers[-2].pool == "cls":
        x = F.pad(x, (0, 0, 1, 0))  # (B, T, D): an all-zero token in front, the class token
    x = x + b  # (B, T, D): each token's input embedding
    d = embed.fan_out
    for i in range(1, len(arch.layers) - 2, len(BLOCK)):
        (g1, c1), q, k, v, o, (g2, c2), m1, m2 = params[i : i + len(BLOCK)]
        h = F.layer_norm(x, (d,), g1, c1, LN_EPS)  # (B, T, D)
        x = x + _attention(h, q, k, v, o, arch.layers[i + 1].heads)
        h = F.layer_norm(x, (d,), g2, c2, LN_EPS)
        h = act(F.linear(h, *m1))  # (B, T, M)
        if dropout > 0 and training:
            h = F.dropout(h, dropout, training=True)
        x = x + F.linear(h, *m2)  # (B, T, D)
    x = F.layer_norm(x, (d,), *params[-2], LN_EPS)
    x = x[..., 0, :] if arch.layers[-2].pool == "cls" else x.mean(dim=-2)  # (B, D)
    return F.linear(x, *params[-1])  # (B, n_classes)


def _attention(
    h: torch.Tensor,
    q: tuple[torch.Tensor, torch.Tensor],
    k: tuple[torch.Tensor, torch.Tensor],
    v: tuple[torch.Tensor, torch.Tensor],
    o: tuple[torch.Tensor, torch.Tensor],
    heads: int,
) -> torch.Tensor:
    """Multi-head self-attention of h (B, T, D) with (weight, bias) projections -> (B, T, D)."""

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, heads * e) -> (B, heads, T, e)
        return t.unflatten(-1, (heads, -1)).transpose(-3, -2)

    qh, kh, vh = (split(F.linear(h, *p)) for p in (q, k, v))
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1])  # (B, heads, T, T)
    out = torch.softmax(scores, dim=-1) @ vh  # (B, heads, T, ev)
    return F.linear(out.transpose(-3, -2).flatten(start_dim=-2), *o)  # (B, T, D)


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
