"""SNE's hierarchical encoder: elements -> chunks -> layers -> network vector -> logit.

Chunk level (dense, padded to c, masked): each scalar weight is lifted by a small MLP, a SAB or
ISAB mixes the elements of a chunk and a PMA pools them. Layer level (segment layout, no padding):
an ISAB and a PMA over the chunk vectors of each layer. Network level: the same over the layer
vectors. Sinusoidal depth and learned layer-type encodings are added at every stage. Nothing mixes
information across networks (no batch statistics), so a prediction does not depend on its batch.

Layer types: every kind reads through the learned code of the format-1 kind it resembles
(`chunking.BASE_KIND`: conv2d for a patch embedding, linear for every other kind), so any
encoder reads any architecture; an encoder built with `new_kinds` (its training zoo has
transformer or INR layers) adds a learned, zero-initialised code of each kind beyond conv2d /
linear on top. Without `new_kinds` it holds exactly the parameters it held before those kinds
existed, so a CNN-trained encoder draws the same initial weights and computes the same bits.

Memory: the batch's chunks are processed in groups of whole sets of at most `chunk_budget` chunks;
at inference a set larger than the budget is streamed (two passes, recomputing its chunk vectors),
so peak memory is set by the budget, not by the size of a network. In training autograd keeps
every group's activations, so memory grows with the chunks of the batch, which `train_chunks`
caps at (layers x train_chunks) per network; with `checkpoint` only group outputs are kept and
one group is recomputed at a time (a set larger than the budget is then one group: training
does not stream).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from sne.blocks import ISAB, PMA, SAB, merge
from sne.chunking import (
    BASE_KIND,
    KIND_IDS,
    N_BASE_KINDS,
    ChunkLayout,
    build_chunks,
    layout,
    plan_groups,
    subsample,
)
from zoo_bench import Architecture

SET_BLOCKS = ("sab", "isab")
LOG_EPS = 0.01  # floor of the log-magnitude feature; scaled values are of order one


@dataclass(frozen=True)
class SNEConfig:
    """The encoder's shape and its ablation switches (see docs/methods/sne.md)."""

    dim: int = 16
    heads: int = 1
    chunk_size: int = 32
    chunk_block: str = "sab"  # set-to-set over the elements of a chunk: "sab" or "isab"
    inducing: int = 4  # inducing points of every ISAB
    positional: bool = True  # depth + layer-type (+ weight/bias) encodings at every stage
    hierarchy: bool = True  # chunk -> layer -> network; False: one set of chunks per network
    chunk_budget: int = 2048  # max chunks encoded at once (whole sets; larger sets stream)
    checkpoint: bool = False  # training: recompute each group in backward, keep only its output
    train_chunks: int = 16  # training: at most this many random chunks per layer (0: all)
    log_features: bool = True  # element features: value, sign and log(|value| + LOG_EPS)

    def __post_init__(self) -> None:
        if self.chunk_block not in SET_BLOCKS:
            raise ValueError(f"chunk_block must be one of {SET_BLOCKS}, got {self.chunk_block!r}")
        for key in ("dim", "heads", "chunk_size", "inducing", "chunk_budget"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.train_chunks < 0:
            raise ValueError(f"train_chunks must be >= 0 (0: all), got {self.train_chunks}")

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoid(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sin/cos encoding of integer positions (n,) -> (n, dim)."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=pos.device)
    freq = torch.exp(-math.log(10000.0) * steps / max(half, 1))
    angle = pos.to(torch.float32)[:, None] * freq
    enc = torch.cat([angle.sin(), angle.cos()], dim=1)
    return torch.nn.functional.pad(enc, (0, dim - enc.shape[1]))


class SNEEncoder(nn.Module):
    """Set-based Neural network Encoder: (architecture, flats) groups -> one logit per network."""

    def __init__(self, config: SNEConfig | None = None, head: bool = True,
                 new_kinds: bool = False):
        super().__init__()
        self.config = cfg = config or SNEConfig()
        d, h, m = cfg.dim, cfg.heads, cfg.inducing
        self.lift_in = nn.Linear(3 if cfg.log_features else 1, d)
        self.lift_out = nn.Linear(d, d)
        self.element_type = nn.Embedding(4, d)  # (conv2d, linear) x (weight, bias)
        self.chunk_set = SAB(d, h) if cfg.chunk_block == "sab" else ISAB(d, h, m)
        self.chunk_pool = PMA(d, h)
        self.chunk_type = nn.Embedding(2, d)
        self.over_chunks_set = ISAB(d, h, m)
        self.over_chunks_pool = PMA(d, h)
        if cfg.hierarchy:
            self.layer_type = nn.Embedding(2, d)
            self.over_layers_set = ISAB(d, h, m)
            self.over_layers_pool = PMA(d, h)
        # without `head` the encoder ends at the network vector (`encode`): another model's
        # head reads it (sne_stats)
        if head:
            self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        # a layer's weights and biases reach the lift times sqrt(fan-in) (unit scale at a standard
        # initialisation, whatever the layer's size) times this one scalar, which the predictor
        # sets from its training zoo so that typical values are of order one
        self.register_buffer("weight_scale", torch.ones(()))
        base = torch.tensor([BASE_KIND[k] for k in KIND_IDS])  # kind id -> 0 conv2d / 1 linear
        self.register_buffer("base_kind", base, persistent=False)
        # learned codes of the kinds beyond conv2d / linear, added to their base kind's; zeros
        # at the start (no random draw), created only when asked for (module docstring)
        self.new_kinds = new_kinds
        if new_kinds:
            n = len(KIND_IDS) - N_BASE_KINDS
            self.element_extra = nn.Parameter(torch.zeros(2 * n, d))  # (kind, weight / bias)
            self.chunk_extra = nn.Parameter(torch.zeros(n, d))
            self.layer_extra = nn.Parameter(torch.zeros(n, d)) if cfg.hierarchy else None

    def forward(
        self, groups: Sequence[tuple[Architecture, torch.Tensor]], pad_value: float = 0.0,
        all_chunks: bool = False,
    ) -> torch.Tensor:
        """Logits (B,) for networks given as (architecture, flats (B_a, P_a)) groups, in order.

        In training mode with `train_chunks` set, each layer is represented by a random subset
        of its chunks (torch's global RNG), a cheaper and noisier step; eval mode, or
        `all_chunks`, reads all.
        """
        return self.head(self.encode(groups, pad_value, all_chunks))[:, 0]

    def encode(
        self, groups: Sequence[tuple[Architecture, torch.Tensor]], pad_value: float = 0.0,
        all_chunks: bool = False,
    ) -> torch.Tensor:
        """Network vectors (B, d) of (architecture, flats) groups; subsampling as in `forward`."""
        lay = layout(groups, self.config.chunk_size)
        if self.training and self.config.train_chunks and not all_chunks:
            lay = subsample(lay, self.config.train_chunks)
        return self.embed(lay, pad_value)

    def subsamples(self, arch: Architecture) -> bool:
        """Whether a training step reads only part of some layer of `arch` (`train_chunks`)."""
        k, c = self.config.train_chunks, self.config.chunk_size
        return bool(k) and any(-(-layer.n_params // c) > k for layer in arch.layers)

    def embed(self, lay: ChunkLayout, pad_value: float = 0.0) -> torch.Tensor:
        """Network vectors (B, d) of a laid-out batch."""
        cfg = self.config
        seg_start = lay.chunk_start if cfg.hierarchy else lay.net_chunk_start
        parts = []
        for lo, hi in plan_groups(seg_start, cfg.chunk_budget):
            c0, c1 = int(seg_start[lo]), int(seg_start[hi])
            if c1 - c0 > cfg.chunk_budget and not torch.is_grad_enabled():
                parts.append(self._stream(lay, c0, c1, pad_value))
            elif cfg.checkpoint and torch.is_grad_enabled():
                parts.append(
                    checkpoint(self._group, lay, c0, c1, lo, hi, pad_value, use_reentrant=False)
                )
            else:
                parts.append(self._group(lay, c0, c1, lo, hi, pad_value))
        v = torch.cat(parts)
        if not cfg.hierarchy:
            return v
        if cfg.positional:
            v = v + self._encoding(lay.depth, lay.kind, "layer")
        v = self.over_layers_set.segments(v, lay.net, lay.n_networks)
        return self.over_layers_pool.segments(v, lay.net, lay.n_networks)

    def _encoding(self, depth: torch.Tensor, kind: torch.Tensor, stage: str) -> torch.Tensor:
        return sinusoid(depth, self.config.dim) + self.kind_code(kind, stage)

    def kind_code(self, kind: torch.Tensor, stage: str) -> torch.Tensor:
        """Learned type code (n, d) of layer kinds (n,) (`KIND_IDS`) at `stage` "chunk" or
        "layer": the base kind's row of that stage's table, plus the kind's own extra row when
        the encoder has `new_kinds` (zero for conv2d / linear)."""
        code = getattr(self, f"{stage}_type")(self.base_kind[kind])
        if self.new_kinds:
            code = code + self._extra(getattr(self, f"{stage}_extra"), kind - N_BASE_KINDS)
        return code

    @staticmethod
    def _extra(extra: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
        """Rows (n, d) of an extra-code table; a negative row (conv2d, linear) gives zeros."""
        return torch.where((row >= 0)[:, None], extra[row.clamp(min=0)], 0.0)

    def lift(
        self, values: torch.Tensor, is_bias: torch.Tensor, depth: torch.Tensor, kind: torch.Tensor,
        fan: torch.Tensor,
    ) -> torch.Tensor:
        """Element features (n, c, d) = lift_out(GELU(W x + b + encoding)).

        values, is_bias: (n, c); depth, kind, fan (incoming weights per unit): (n,) per chunk.
        x is v = value * sqrt(fan) * weight_scale, and with `log_features` also sign(v) and
        log(|v| + LOG_EPS): per-layer scales of trained networks span orders of magnitude, which
        a linear lift of v alone squashes into GELU's saturated or linear ends.

        The element's encoding (depth sinusoid + (layer type, weight or bias) embedding of its
        chunk's layer) enters the lift's hidden pre-activation: the same as lifting the tuple
        (value, encoding), in two passes over the elements instead of five.
        """
        n, d = values.shape[0], self.config.dim
        base = self.lift_in.bias.expand(n, 1, d)
        base_kind = self.base_kind[kind]
        if self.config.positional:
            code = self.element_type(base_kind * 2)
            if self.new_kinds:
                code = code + self._extra(self.element_extra, 2 * (kind - N_BASE_KINDS))
            base = base + (sinusoid(depth, d) + code)[:, None]
        values = values * (fan.to(values.dtype).sqrt() * self.weight_scale)[:, None]
        if self.config.log_features:
            x = torch.stack([values, values.sign(), (values.abs() + LOG_EPS).log()], -1)
            pre = base + x @ self.lift_in.weight.T  # (n, c, 3) -> (n, c, d)
        else:
            pre = torch.addcmul(base, values[..., None], self.lift_in.weight[:, 0])
        if self.config.positional:
            row, col = is_bias.nonzero(as_tuple=True)
            b = base_kind[row]
            delta = self.element_type(b * 2 + 1) - self.element_type(b * 2)
            if self.new_kinds:
                k = kind[row] - N_BASE_KINDS
                delta = delta + (self._extra(self.element_extra, 2 * k + 1)
                                 - self._extra(self.element_extra, 2 * k))
            pre = pre.index_put_((row, col), delta, accumulate=True)
        return self.lift_out(nn.functional.gelu(pre))

    def chunk_vectors(
        self, lay: ChunkLayout, c0: int, c1: int, pad_value: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors (n, d) of global chunks [c0, c1) and the set each belongs to (layer or net)."""
        ch = build_chunks(lay, c0, c1, pad_value)
        depth, kind = lay.depth[ch.item], lay.kind[ch.item]
        x = self.lift(ch.values, ch.is_bias, depth, kind, lay.fan[ch.item])
        x = self.chunk_pool(self.chunk_set(x, ch.mask), ch.mask)
        if self.config.positional:
            x = x + self._encoding(depth, kind, "chunk")
        return x, (ch.item if self.config.hierarchy else lay.net[ch.item])

    def _group(
        self, lay: ChunkLayout, c0: int, c1: int, lo: int, hi: int, pad_value: float
    ) -> torch.Tensor:
        """Vectors (hi - lo, d) of sets lo..hi-1, whose chunks are exactly [c0, c1)."""
        x, seg = self.chunk_vectors(lay, c0, c1, pad_value)
        seg = seg - lo
        x = self.over_chunks_set.segments(x, seg, hi - lo)
        return self.over_chunks_pool.segments(x, seg, hi - lo)

    def _stream(self, lay: ChunkLayout, c0: int, c1: int, pad_value: float) -> torch.Tensor:
        """Vector (1, d) of one set larger than the budget: two passes over budget-sized pieces."""
        step = self.config.chunk_budget
        pieces = [(s, min(s + step, c1)) for s in range(c0, c1, step)]
        state = None
        for s, e in pieces:
            x, _ = self.chunk_vectors(lay, s, e, pad_value)
            zero = torch.zeros(len(x), dtype=torch.int64, device=x.device)
            state = merge(state, self.over_chunks_set.summary_state(x, zero, 1))
        summary = self.over_chunks_set.summary(state)
        state = None
        for s, e in pieces:
            x, _ = self.chunk_vectors(lay, s, e, pad_value)
            zero = torch.zeros(len(x), dtype=torch.int64, device=x.device)
            y = self.over_chunks_set.read_back(x, summary, zero)
            state = merge(state, self.over_chunks_pool.state(y, zero, 1))
        return self.over_chunks_pool.finish(state)
