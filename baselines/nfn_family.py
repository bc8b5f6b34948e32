"""Permutation-equivariant neural functionals on the `nfn` package (Zhou et al., NeurIPS 2023).

`nfn_np` (NFN with NP layers and input/output position embeddings), `nfn_hnp` (NFN with HNP
layers) and `nft` (the Neural Functional Transformer: a stack of `NPAttention` blocks) share one
recipe, the one of the NFN paper's generalisation-prediction experiment: the network's weights as
`nfn.common.WeightSpaceFeatures` (one channel; conv kernel taps become channels inside the nfn
layers), the equivariant encoder, an invariant pooling (`HNPPool` or `NPPool`), an MLP head.

What comes from `nfn` 0.1.2 and why: `WeightSpaceFeatures` / `network_spec_from_wsfeat` (the
input format and the symmetry spec every nfn layer is built from), `NPLinear(io_embed=True)` and
`HNPLinear` (the equivariant layers), `NPAttention`, `Pointwise`, `SimpleLayerNorm`,
`LearnedPosEmbedding`, `ResBlock`, `TupleOp` (NFT's blocks), `HNPPool` / `NPPool` (the invariant
pooling). What is ours: the conversion from a zoo's flat vectors, the input normalisation, the
MLP head (the paper's `MlpHead` lives in their experiment scripts, not in the package), and
the coverage rules (`supports`, `can_predict`).

Input normalisation keeps exact permutation invariance: each weight tensor is multiplied by
sqrt(its fan-in) (a constant of the architecture, so networks of another width arrive at a
comparable scale), then standardised with one mean and one standard deviation per tensor
(weight or bias of each layer) taken over all entries of all training networks, and clipped
to +-10. Every step is a scalar or element-wise map, so a hidden-unit permutation of the input
permutes the normalised input the same way.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from nfn.common import NetworkSpec, WeightSpaceFeatures, network_spec_from_wsfeat
from nfn.layers import (
    HNPLinear,
    HNPPool,
    LearnedPosEmbedding,
    NPAttention,
    NPLinear,
    NPPool,
    Pointwise,
    ResBlock,
    SimpleLayerNorm,
    TupleOp,
)
from torch import nn

from zoo_bench import (
    Architecture,
    Batch,
    FitContext,
    PredictorError,
    TorchPredictor,
    Zoo,
    usable_positions,
)

CLIP = 10.0
STAT_NETWORKS = 2048  # training networks the normalisation statistics are taken over (at most)
POOLS = {"hnp": HNPPool, "np": NPPool}
NFN_KINDS = ("conv2d", "linear", "sine")  # the chain kinds nfn's weight spaces describe
Signature = tuple[int, int, tuple[tuple[str | int, ...], ...]]


def layout_problem(arch: Architecture) -> str | None:
    """Why nfn cannot take `arch` (None if it can): nfn needs a chain of >= 2 layers, convs
    before dense layers (linear, or sine: a SIREN's weight space is an MLP's), where every layer
    reads exactly the units of the one before (a flatten of spatial maps larger than 1x1 mixes
    positions into the units and breaks the symmetry). A Vision Transformer is no chain: nfn
    0.1.2's `NetworkSpec` has no residual stream shared by every layer, no layer norm, no heads
    and no token embeddings, so its layers would not be equivariant to the ViT's symmetries."""
    bad = next((i for i, la in enumerate(arch.layers) if la.kind not in NFN_KINDS), None)
    if bad is not None:
        return (f"layer {bad} is a {arch.layers[bad].kind} layer: nfn 0.1.2 reads chains of "
                f"{' / '.join(NFN_KINDS)} layers, not a transformer's residual stream, layer "
                "norms and attention heads")
    if len(arch.layers) < 2:
        return "nfn needs at least 2 layers"
    for i, (prev, layer) in enumerate(zip(arch.layers, arch.layers[1:], strict=False), 1):
        if prev.kind != "conv2d" and layer.kind == "conv2d":
            return f"layer {i} is a conv after a {prev.kind} layer"
        if layer.fan_in != prev.fan_out:
            return (f"layer {i} reads {layer.fan_in} inputs from {prev.fan_out} units "
                    "(a flatten of maps larger than 1x1)")
    return None


def signature(arch: Architecture) -> Signature:
    """What a fitted nfn model is bound to: input channels, outputs, each layer's kind and
    kernel shape (() for linear), hence the layer count. Hidden widths are free: nfn shares
    parameters across the hidden units of a layer. The kind keeps a SIREN (sine layers) and a
    ReLU MLP of the same shapes apart: their weights mean different functions."""
    return (arch.layers[0].fan_in, arch.layers[-1].fan_out,
            tuple((layer.kind, *layer.weight_shape[2:]) for layer in arch.layers))


def fan_scales(arch: Architecture) -> list[float]:
    """sqrt(fan-in) of each layer: input channels x kernel taps (in for a linear layer)."""
    return [math.sqrt(math.prod(layer.weight_shape[1:])) for layer in arch.layers]


def to_wsfeat(params: list[tuple[torch.Tensor, torch.Tensor]], arch: Architecture,
              norm: torch.Tensor | None = None) -> WeightSpaceFeatures:
    """Per-layer (weight (B, out, in[, kh, kw]), bias (B, out)) as nfn's one-channel features:
    weights (B, 1, out, in[, kh, kw]), biases (B, 1, out), each times sqrt(fan-in); with `norm`
    ((L, 4): weight mean, weight std, bias mean, bias std per layer) standardised and clipped."""
    weights, biases = [], []
    for i, ((w, b), s) in enumerate(zip(params, fan_scales(arch), strict=True)):
        w, b = w.unsqueeze(1) * s, b.unsqueeze(1) * s
        if norm is not None:
            w = ((w - norm[i, 0]) / norm[i, 1]).clamp(-CLIP, CLIP)
            b = ((b - norm[i, 2]) / norm[i, 3]).clamp(-CLIP, CLIP)
        weights.append(w)
        biases.append(b)
    return WeightSpaceFeatures(weights, biases)


def tensor_norm_stats(train: Zoo, positions: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """(L, 4) per-layer weight mean / std and bias mean / std of the sqrt(fan-in)-scaled
    tensors, over every entry of (up to STAT_NETWORKS of) the given training networks."""
    sums: torch.Tensor | None = None  # (L, weight / bias, count / sum / sum of squares)
    for name, group in train.arch_groups(positions[:STAT_NETWORKS]).items():
        arch = train.architectures[name]
        for s in range(0, len(group), batch_size):
            flat = np.nan_to_num(train.flat_batch(group[s : s + batch_size]), nan=0.0,
                                 posinf=0.0, neginf=0.0)
            feats = to_wsfeat(arch.unflatten(torch.from_numpy(flat).double()), arch)
            if sums is None:
                sums = torch.zeros(len(feats), 2, 3, dtype=torch.float64)
            for i, (w, b) in enumerate(feats):
                for j, t in enumerate((w, b)):
                    sums[i, j] += torch.stack([torch.tensor(float(t.numel()), dtype=torch.float64),
                                               t.sum(), t.square().sum()])
    assert sums is not None
    mean = sums[..., 1] / sums[..., 0]
    std = (sums[..., 2] / sums[..., 0] - mean.square()).clamp(min=0).sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return torch.stack([mean[:, 0], std[:, 0], mean[:, 1], std[:, 1]], dim=1).float()


class NFNRegressor(nn.Module):
    """Equivariant encoder -> invariant pool -> MLP head: one prediction per network."""

    def __init__(self, spec: NetworkSpec, encoder: nn.Module, channels: int, pool: str,
                 hidden: int, dropout: float, norm: torch.Tensor):
        super().__init__()
        pool_cls = POOLS[pool]
        self.encoder = encoder
        self.pool = pool_cls(spec)
        n_pooled = channels * pool_cls.get_num_outs(spec)
        self.head = nn.Sequential(
            nn.Linear(n_pooled, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        self.register_buffer("norm", norm)  # (L, 4), see `to_wsfeat`

    def embed(self, wsfeat: WeightSpaceFeatures) -> torch.Tensor:
        """Invariant features (B, channels * pooled outputs) of normalised inputs."""
        pooled = self.pool(self.encoder(wsfeat))  # (B, channels, pooled outputs)
        return pooled.flatten(start_dim=1)

    def forward(self, wsfeat: WeightSpaceFeatures) -> torch.Tensor:
        return self.head(self.embed(wsfeat)).squeeze(-1)  # (B,)


class _NFNBase(TorchPredictor):
    """Shared fit / predict / coverage of the nfn-family predictors (see the module docstring).

    `supports(arch)`: conv / linear / sine chains nfn can take (`layout_problem`, which names
    the reason for any other, a Vision Transformer among them). After fit the model
    is bound to the training architecture's input channels, outputs, layer count and kernel
    shapes (`signature`); `can_predict(arch)` says whether a fitted model can read `arch`
    (any hidden widths: a model fitted on ctc reads a wider ctc, never cnn_small).
    """

    defaults: ClassVar[dict[str, Any]] = {
        **TorchPredictor.defaults,
        "lr": 3e-3, "batch_size": 8, "hidden": 128, "dropout": 0.0, "pool": "hnp",
    }
    supports_note = ("conv -> GAP -> linear chains and SIRENs (sine MLPs), not transformers; "
                     "after fit: same depth, kernels, inputs and outputs, any widths")

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        if self.hparams()["pool"] not in POOLS:
            raise PredictorError(
                f"{type(self).__name__}: pool must be one of {sorted(POOLS)}, "
                f"got {self.hparams()['pool']!r}"
            )
        self._signature: Signature | None = None
        self.spec: NetworkSpec | None = None

    def supports(self, arch: Architecture) -> bool:
        return layout_problem(arch) is None

    def can_predict(self, arch: Architecture) -> bool:
        """Whether the fitted model can read `arch` (before fit: `supports`)."""
        if not self.supports(arch):
            return False
        return self._signature is None or signature(arch) == self._signature

    def encoder(self, spec: NetworkSpec) -> tuple[nn.Module, int]:
        """The equivariant encoder for `spec` and its output channel count."""
        raise NotImplementedError

    def fit_problem(self, train: Zoo, val: Zoo) -> str | None:
        """One model reads one layer structure: zoos that mix several (widths aside) cannot
        train one."""
        archs = {**{a: train.architectures[a] for a in train.arch_groups()},
                 **{a: val.architectures[a] for a in val.arch_groups()}}
        if len({signature(a) for a in archs.values()}) > 1:
            return (f"{type(self).__name__} builds one model for one layer structure; training "
                    f"and validation hold {len(archs)} architectures "
                    f"({', '.join(sorted(archs)[:4])}{', ...' if len(archs) > 4 else ''}) with "
                    "different layer counts, kernels "
                    "or input/output sizes: split the zoo by architecture")
        return None

    def fit(self, train: Zoo, val: Zoo, target: str, ctx: FitContext) -> None:
        problem = self.fit_problem(train, val)
        if problem:
            raise PredictorError(problem)
        self._signature = None
        super().fit(train, val, target, ctx)
        self._signature = signature(train.architectures[next(iter(train.arch_groups()))])

    def predict(self, zoo: Zoo) -> np.ndarray:
        bad = [a for a in zoo.arch_groups() if not self.can_predict(zoo.architectures[a])]
        if bad:
            raise PredictorError(
                f"{type(self).__name__} was fitted on layer structure {self._signature} "
                f"(input channels, outputs, kernel shapes) and cannot read architectures {bad} "
                f"of zoo {zoo.name}; check can_predict(arch) first"
            )
        return super().predict(zoo)

    def build_model(self, train: Zoo) -> nn.Module:
        h = self.hparams()
        pos = usable_positions(train)
        if len(pos) == 0:
            raise PredictorError(f"zoo {train.name}: no training network has finite weights")
        arch = train.architecture_of(int(pos[0]))
        norm = tensor_norm_stats(train, pos)
        probe = to_wsfeat(arch.unflatten(torch.zeros(1, arch.n_params)), arch)
        self.spec = network_spec_from_wsfeat(probe)
        encoder, channels = self.encoder(self.spec)
        return NFNRegressor(self.spec, encoder, channels, str(h["pool"]), int(h["hidden"]),
                            float(h["dropout"]), norm)

    def forward(self, batch: Batch) -> torch.Tensor:
        assert isinstance(self.model, NFNRegressor)
        return self.model(to_wsfeat(batch.params(), batch.arch, self.model.norm))


def _equivariant_stack(layer: Any, spec: NetworkSpec, channels: list[int]) -> nn.Sequential:
    """The paper's encoder: `layer(spec, c_in, c_out)` then ReLU for each hidden channel count."""
    mods: list[nn.Module] = []
    prev = 1
    for c in channels:
        mods += [layer(spec, prev, c), TupleOp(nn.ReLU())]
        prev = c
    return nn.Sequential(*mods)


def _channels(owner: str, value: Any) -> list[int]:
    if not (isinstance(value, list) and value and all(isinstance(c, int) and c > 0
                                                      for c in value)):
        raise PredictorError(f"{owner}: channels must be a non-empty list of positive ints, "
                             f"got {value!r}")
    return value


class NFNNP(_NFNBase):
    """NFN-NP: `NPLinear` layers with learned input/output position embeddings
    (`io_embed=True`, the paper's NP-PosEmb), ReLU, invariant pool, MLP head.
    `channels` are the hidden channel counts: [8, 8, 4], half the paper's [16, 16, 5], so a
    fit stays within the CPU budget (kernel taps multiply the channels 9x on ctc)."""

    defaults: ClassVar[dict[str, Any]] = {**_NFNBase.defaults, "channels": [8, 8, 4]}

    def encoder(self, spec: NetworkSpec) -> tuple[nn.Module, int]:
        channels = _channels("NFNNP", self.hparams()["channels"])

        def layer(s: NetworkSpec, c_in: int, c_out: int) -> nn.Module:
            return NPLinear(s, c_in, c_out, io_embed=True)

        return _equivariant_stack(layer, spec, channels), channels[-1]


class NFNHNP(_NFNBase):
    """NFN-HNP: `HNPLinear` layers (input and output units are not permuted, so no position
    embedding is needed), ReLU, invariant pool, MLP head; `channels` as for NFN-NP."""

    defaults: ClassVar[dict[str, Any]] = {**_NFNBase.defaults, "channels": [8, 8, 4]}

    def encoder(self, spec: NetworkSpec) -> tuple[nn.Module, int]:
        channels = _channels("NFNHNP", self.hparams()["channels"])
        return _equivariant_stack(HNPLinear, spec, channels), channels[-1]


class NFT(_NFNBase):
    """NFT: a `Pointwise` lift to `dim` channels plus `LearnedPosEmbedding` (input/output
    positions), then `blocks` pre-norm transformer blocks of the package's layers
    (`SimpleLayerNorm` -> `NPAttention` residual, `SimpleLayerNorm` -> `Pointwise` MLP residual,
    via `ResBlock`), a final `SimpleLayerNorm`, invariant pool, MLP head. Projections are per
    layer (`share_projections=False`), as conv layers carry kernel-tap channels."""

    defaults: ClassVar[dict[str, Any]] = {
        **_NFNBase.defaults, "lr": 1e-3, "dim": 8, "heads": 2, "blocks": 1, "attn_dropout": 0.0,
    }

    def encoder(self, spec: NetworkSpec) -> tuple[nn.Module, int]:
        h = self.hparams()
        dim, heads = int(h["dim"]), int(h["heads"])
        if dim % heads:
            raise PredictorError(f"NFT: dim ({dim}) must be divisible by heads ({heads})")
        identity = TupleOp(nn.Identity())
        mods: list[nn.Module] = [Pointwise(spec, 1, dim), LearnedPosEmbedding(spec, dim)]
        for _ in range(int(h["blocks"])):
            attn = NPAttention(spec, dim, num_heads=heads, dropout=float(h["attn_dropout"]),
                               share_projections=False)
            ff = nn.Sequential(Pointwise(spec, dim, 2 * dim), TupleOp(nn.ReLU()),
                               Pointwise(spec, 2 * dim, dim))
            mods += [ResBlock(attn, identity, 0.0, SimpleLayerNorm(spec, dim)),
                     ResBlock(ff, identity, 0.0, SimpleLayerNorm(spec, dim))]
        mods.append(SimpleLayerNorm(spec, dim))
        return nn.Sequential(*mods), dim
