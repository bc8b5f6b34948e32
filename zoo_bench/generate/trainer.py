"""Train a population of same-architecture networks together, one fused step for all of them.

The N networks live in one (N, P) tensor laid out as the zoo stores them (`zoo_bench.arch`).
Convolutions run as one grouped convolution (each network is a group of channels), dense layers
as one batched matmul, Vision Transformers as batched matmuls with a leading network dimension
(`TransformerPopulation`), and SGD / Adam / RMSprop as one vectorised update with per-network
learning rate, L2 and optimizer constants. Each network draws its own training subset, data
order and initialisation from its own seed. Checkpoints are evaluated on the full test split and
on each network's own training subset, on the CPU one network at a time through
`functional_forward` (as fast per example as the fused pass), so the recorded accuracies are
exactly what `Zoo.module(i)` computes (see `network_logits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from zoo_bench.arch import ACTIVATIONS, BLOCK, LN_EPS, Architecture, functional_forward
from zoo_bench.generate.datasets import Dataset
from zoo_bench.generate.hyper import RunSpec

# Keras' variance-scaling initialisers draw from a normal truncated at 2 sigma; this undoes the
# truncation's shrinkage so the drawn weights have the intended standard deviation.
TRUNCATED_STD = 0.87962566103423978
EVAL_ELEMENTS = 1 << 22  # activations per fused evaluation chunk, bounds memory
# Examples per forward when one network scores a split: per-example results can depend on the
# batch size in the last bits, so this is part of what "the recorded accuracy" means; 1,000 is
# also about the fastest batch on the CPU (4,000 at once runs up to 3x slower per example).
EVAL_BATCH = 1000
TOKEN_STD = 0.02  # initial std of a ViT's token embeddings (class token + positions), as in ViT


def init_flat(
    arch: Architecture, w_init: str, init_std: float, gen: torch.Generator
) -> torch.Tensor:
    """One network's flat initial weights, drawn on the CPU from `gen`: weight matrices and
    kernels by `w_init`, zero biases; a layer norm starts as the identity (gain 1, bias 0) and
    a ViT's token embeddings (the patch_embed bias) small normal (`TOKEN_STD`)."""
    parts = []
    for layer in arch.layers:
        if layer.kind == "layernorm":
            parts += [torch.ones(layer.weight_shape), torch.zeros(layer.bias_shape)]
            continue
        w = torch.empty(layer.weight_shape)
        rf = math.prod(layer.weight_shape[2:])
        fan_in, fan_out = layer.fan_in * rf, layer.fan_out * rf
        if w_init in ("he_normal", "glorot_normal"):
            var = 2.0 / fan_in if w_init == "he_normal" else 2.0 / (fan_in + fan_out)
            std = math.sqrt(var) / TRUNCATED_STD
            torch.nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std, generator=gen)
        elif w_init == "orthogonal":
            torch.nn.init.orthogonal_(w, generator=gen)
        elif w_init == "normal":
            torch.nn.init.normal_(w, 0.0, init_std, generator=gen)
        elif w_init == "truncated_normal":
            lim = 2 * init_std
            torch.nn.init.trunc_normal_(w, 0.0, init_std, -lim, lim, generator=gen)
        else:
            raise ValueError(f"unknown weight init {w_init!r}")
        bias = torch.zeros(layer.bias_shape)
        if layer.kind == "patch_embed":
            torch.nn.init.normal_(bias, 0.0, TOKEN_STD, generator=gen)
        parts += [w.reshape(-1), bias.reshape(-1)]
    return torch.cat(parts)


def correct_and_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: correct (argmax equals the label and every logit is finite) and CE loss."""
    finite = torch.isfinite(logits).all(dim=-1)
    correct = (logits.argmax(dim=-1) == y) & finite
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return correct, loss.reshape(y.shape)


def accuracy(logits: torch.Tensor, y: torch.Tensor | np.ndarray) -> float:
    """Fraction of examples predicted right, as the zoos record `test_accuracy`."""
    labels = torch.as_tensor(np.array(y) if isinstance(y, np.ndarray) else y, device=logits.device)
    correct, _ = correct_and_loss(logits, labels)
    return int(correct.sum()) / len(correct)


def evaluate_chunked(
    forward: Callable[..., torch.Tensor], n: int, x: torch.Tensor, y: torch.Tensor,
    rows: torch.Tensor | None, chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correct (N, n) and loss (N, n) of a population's `forward`, `chunk` examples at a time:
    on images x shared by all N networks, or with `rows` (N, n) picking each network's own."""
    total = len(x) if rows is None else rows.shape[1]
    corrects, losses = [], []
    for s in range(0, total, chunk):
        if rows is None:
            logits = forward(x[s : s + chunk], per_network=False)
            yc = y[s : s + chunk].expand(n, -1)
        else:
            idx = rows[:, s : s + chunk]
            logits, yc = forward(x[idx.T], per_network=True), y[idx]
        correct, loss = correct_and_loss(logits, yc)
        corrects.append(correct)
        losses.append(loss)
    return torch.cat(corrects, 1), torch.cat(losses, 1)


class PopulationOptimizer:
    """SGD, Adam and RMSprop (PyTorch's update rules and defaults) for all networks at once.

    One formula covers all three: m <- lerp(m, g, 1 - b1), v <- lerp(v, g^2, 1 - b2),
    p <- p - lr * c1 * m / (sqrt(c2 * v) + eps), with per-network constants chosen so it
    reduces to plain SGD (b1 = 0, c2 = 0, eps = 1) or RMSprop (b1 = 0, c1 = c2 = 1).
    L2 is added to the kernel gradients (not the biases, nor a layer norm's gain), as Keras'
    kernel regularizer does.
    """

    def __init__(self, runs: Sequence[RunSpec], arch: Architecture, device: torch.device):
        def col(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)[:, None]

        kinds = [r.optimizer for r in runs]
        unknown = sorted(set(kinds) - {"sgd", "adam", "rmsprop"})
        if unknown:
            raise ValueError(f"unknown optimizers {unknown}; use sgd, adam or rmsprop")
        self.lr = col([r.learning_rate for r in runs])
        self.adam = col([k == "adam" for k in kinds])
        self.c2_base = col([k != "sgd" for k in kinds])
        self.w1 = col([0.1 if k == "adam" else 1.0 for k in kinds])
        self.w2 = col([{"adam": 0.001, "rmsprop": 0.01, "sgd": 0.0}[k] for k in kinds])
        self.eps = col([1.0 if k == "sgd" else 1e-8 for k in kinds])
        kernel = torch.cat([
            t for la in arch.layers
            for t in (torch.full((math.prod(la.weight_shape),), float(la.kind != "layernorm")),
                      torch.zeros(math.prod(la.bias_shape)))
        ]).to(device)
        self.l2 = col([2.0 * r.l2reg for r in runs]) * kernel[None, :]
        self.m = torch.zeros(len(runs), arch.n_params, device=device)
        self.v = torch.zeros_like(self.m)
        self.t = 0

    @torch.no_grad()
    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        """Update parameters `p` (N, P) in place from their gradient `g` (consumed)."""
        self.t += 1
        c1 = 1 + self.adam * (1 / (1 - 0.9**self.t) - 1)
        c2 = self.c2_base * (1 + self.adam * (1 / (1 - 0.999**self.t) - 1))
        g.addcmul_(p, self.l2)
        self.m.lerp_(g, self.w1)
        self.v.lerp_(g.mul_(g), self.w2)
        denom = self.v.mul(c2).sqrt_().add_(self.eps)
        p.sub_(self.m.div(denom).mul_(self.lr * c1))


def split_params(arch: Architecture, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (weight (N, ...), bias (N, ...)) views of a flat (N, P) population tensor, as
    `Architecture.unflatten` gives them but through one `split`: its backward writes the whole
    gradient in one go, where a slice per tensor would build and sum a full-size zero gradient
    for each of them (a fifth of a small ViT's training step)."""
    sizes = [math.prod(s) for la in arch.layers for s in (la.weight_shape, la.bias_shape)]
    parts = flat.split(sizes, dim=1)
    n = flat.shape[0]
    return [
        (parts[2 * i].reshape(n, *la.weight_shape), parts[2 * i + 1].reshape(n, *la.bias_shape))
        for i, la in enumerate(arch.layers)
    ]


@dataclass(frozen=True)
class _Segment:
    """Consecutive networks sharing an activation and whether they use dropout."""

    lo: int
    hi: int
    activation: str
    threshold: torch.Tensor | None  # dropout: keep where 15 random bits >= this, per network
    scale: torch.Tensor | None  # 1 / keep probability, per network


class _SegmentedActivation(torch.autograd.Function):
    """Each network's activation (relu or tanh) on its slice, then its dropout mask, as one
    autograd node writing straight into its outputs (no concatenation, no temporaries)."""

    @staticmethod
    def forward(ctx, h, slices, activations, masks):  # noqa: ANN001, ANN205
        y = torch.empty_like(h)
        out = y if all(m is None for m in masks) else torch.empty_like(h)
        for sl, act, m in zip(slices, activations, masks, strict=True):
            if act == "relu":  # what torch.relu computes
                torch.clamp_min(h[sl], 0, out=y[sl])
            else:
                torch.tanh(h[sl], out=y[sl])
            if m is not None:
                torch.mul(y[sl], m, out=out[sl])
            elif out is not y:
                out[sl].copy_(y[sl])
        ctx.save_for_backward(y)
        ctx.slices, ctx.activations, ctx.masks = slices, activations, masks
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (y,) = ctx.saved_tensors
        g = torch.empty_like(grad)
        for sl, act, m in zip(ctx.slices, ctx.activations, ctx.masks, strict=True):
            gs = grad[sl]
            if m is not None:
                gs = torch.mul(gs, m, out=g[sl])
            if act == "relu":
                torch.ops.aten.threshold_backward.grad_input(gs, y[sl], 0, grad_input=g[sl])
            else:
                torch.ops.aten.tanh_backward.grad_input(gs, y[sl], grad_input=g[sl])
        return g, None, None, None


class Population:
    """N networks of one architecture in one (N, P) tensor, with a fused forward pass.

    Inside the pass, convolution activations are (B, N * C, H, W) in channels-last memory
    (much faster for grouped convolutions and pooling on the CPU): network n owns channels
    n*C..(n+1)*C, so one grouped convolution runs every network. With images shared by every
    network (evaluation) the first layer is one matmul of all filters over unfolded patches.
    Dense activations are (N, B, F); dense layers, and convolutions whose kernel covers their
    whole input, are one batched matmul.
    """

    def __init__(self, arch: Architecture, runs: Sequence[RunSpec], flat: torch.Tensor):
        if arch.layers[0].kind != "conv2d":
            raise ValueError(f"{arch.name}: the population trainer needs a conv first layer")
        for a, b in zip(arch.layers, arch.layers[1:], strict=False):
            if a.kind == "conv2d" and b.kind == "linear" and a.pool not in ("gap", "flatten"):
                raise ValueError(f"{arch.name}: a dense layer after a conv needs pool gap/flatten")
        self.arch = arch
        self.n = len(runs)
        self.flat = flat
        self.segments: list[_Segment] = []
        start = 0
        for i in range(1, self.n + 1):
            key = (runs[start].activation, runs[start].dropout > 0)
            if i < self.n and (runs[i].activation, runs[i].dropout > 0) == key:
                continue
            threshold = scale = None
            if key[1]:
                steps = torch.tensor([round(r.dropout * 32768) for r in runs[start:i]])
                threshold = steps.to(torch.int16).to(flat.device)
                scale = (32768 / (32768 - steps.double())).float().to(flat.device)
            self.segments.append(_Segment(start, i, key[0], threshold, scale))
            start = i
        self.shapes = arch.conv_shapes()
        self.dense_convs = {
            i for i, la in enumerate(arch.layers)
            if i > 0 and la.kind == "conv2d" and la.padding == 0 and self.shapes[i][1:] == (1, 1)
            and la.weight_shape[2:] == self._in_hw(i) and la.pool in ("gap", "flatten", None)
            and (la.pool is not None or i == len(arch.layers) - 1)
        }
        self._mask_consts: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _in_hw(self, i: int) -> tuple[int, int]:
        """Spatial size of conv layer i's input."""
        if i == 0:
            return tuple(self.arch.input_shape[1:])
        _, h, w = self.shapes[i - 1]
        if self.arch.layers[i - 1].pool == "max2":
            h, w = h // 2, w // 2
        return (h, w)

    def layer_params(self, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer (weight (N, ...), bias (N, O)) views of a flat (N, P) tensor."""
        return split_params(self.arch, flat)

    def forward(
        self, x: torch.Tensor, per_network: bool, training: bool = False,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Logits (N, B, O). `x` is either images (B, C, H, W) shared by every network, or
        with `per_network` images (B, N, H, W, C) (channels last), each network its own."""
        n = self.n
        params = self.layer_params(self.flat)
        if per_network:
            bsz, _, height, width, c = x.shape
            h = x.permute(0, 2, 3, 1, 4).reshape(bsz, height, width, n * c).permute(0, 3, 1, 2)
        else:  # the first layer as one matmul of every network's filters over shared patches
            la, (w, b) = self.arch.layers[0], params[0]
            o, (_, ho, wo) = la.fan_out, self.shapes[0]
            u = F.unfold(x, la.weight_shape[2:], padding=la.padding, stride=la.stride)
            h = torch.matmul(u.transpose(1, 2), w.reshape(n * o, -1).T) + b.reshape(-1)
            h = h.view(-1, ho, wo, n * o).permute(0, 3, 1, 2)
        last = len(self.arch.layers) - 1
        for i, (la, (w, b)) in enumerate(zip(self.arch.layers, params, strict=True)):
            dense = i in self.dense_convs
            if dense:  # the kernel covers the whole input: a dense layer on the flat input
                h = h.reshape(h.shape[0], n, -1).transpose(0, 1)
                h = torch.baddbmm(b.unsqueeze(1), h, w.reshape(n, la.fan_out, -1).transpose(1, 2))
            elif la.kind == "conv2d" and (i > 0 or per_network):
                h = F.conv2d(
                    h, w.reshape(n * la.fan_out, *la.weight_shape[1:]), b.reshape(-1),
                    stride=la.stride, padding=la.padding, groups=n,
                )
            elif la.kind == "linear":
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if i == last:
                break
            conv = la.kind == "conv2d" and not dense
            if la.pool_first:
                h = F.max_pool2d(h, 2)
            h = self._activate(h, conv, la.fan_out, training, gen)
            if dense:  # 1x1 output: pooling or flattening leaves (N, B, O) as it is
                continue
            if la.pool == "max2" and not la.pool_first:
                h = F.max_pool2d(h, 2)
            elif la.pool == "gap":
                h = h.mean(dim=(-2, -1)).reshape(h.shape[0], n, -1).transpose(0, 1)
            elif la.pool == "flatten":
                h = h.reshape(h.shape[0], n, -1).transpose(0, 1)
        return h

    def _activate(
        self, h: torch.Tensor, conv: bool, width: int, training: bool, gen: torch.Generator | None
    ) -> torch.Tensor:
        """Activation and (when training) dropout of every network on its own slice."""
        drop = training and any(s.threshold is not None for s in self.segments)
        if len(self.segments) == 1 and not drop:
            return ACTIVATIONS[self.segments[0].activation](h)
        slices, acts, masks = [], [], []
        for s in self.segments:
            sl = (slice(None), slice(s.lo * width, s.hi * width)) if conv else slice(s.lo, s.hi)
            slices.append(sl)
            acts.append(s.activation)
            use = drop and s.threshold is not None
            masks.append(self._dropout_mask(h[sl], s, conv, width, gen) if use else None)
        return _SegmentedActivation.apply(h, slices, acts, masks)

    def _dropout_mask(
        self, part: torch.Tensor, s: _Segment, conv: bool, width: int,
        gen: torch.Generator | None,
    ) -> torch.Tensor:
        """Keep-and-rescale mask from 15-bit random numbers, four per 64-bit draw (the CPU
        generator is the bottleneck otherwise); laid out like `part`."""
        key = (s.lo, width if conv else 0)
        if key not in self._mask_consts:
            shape = (1, -1, 1, 1) if conv else (-1, 1, 1)
            reps = width if conv else 1
            self._mask_consts[key] = (
                s.threshold.repeat_interleave(reps).view(shape),
                s.scale.repeat_interleave(reps).view(shape),
            )
        threshold, scale = self._mask_consts[key]
        words = torch.empty(-(-part.numel() // 4), dtype=torch.int64, device=part.device)
        bits = words.random_(generator=gen).view(torch.int16)[: part.numel()]
        if conv:  # draw in memory order (channels-last), then view logically as (B, C, H, W)
            b_, c_, h_, w_ = part.shape
            bits = bits.view(b_, h_, w_, c_).permute(0, 3, 1, 2)
        else:
            bits = bits.view(part.shape)
        return ((bits & 0x7FFF) >= threshold) * scale

    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Correct (N, n) and loss (N, n) on labels y (m,) of images x (m, C, H, W) shared by
        all networks, or with `rows` (N, n) of images x (m, H, W, C), each network its own."""
        per_example = max(math.prod(s) for s in self.shapes)
        chunk = max(1, EVAL_ELEMENTS // (self.n * per_example))
        return evaluate_chunked(self.forward, self.n, x, y, rows, chunk)


class TransformerPopulation:
    """N Vision Transformers of one architecture in one (N, P) tensor, with a fused forward.

    The pre-norm forward of `functional_forward` with a leading network dimension: every
    projection is one batched matmul over (N, B * T, D) activations, attention runs on
    (N, B, heads, T, e). Each network has its own MLP activation (relu or tanh) and dropout
    rate (dropout acts where `functional_forward` puts it: on the MLP's hidden units).
    """

    def __init__(self, arch: Architecture, runs: Sequence[RunSpec], flat: torch.Tensor):
        if not arch.transformer:
            raise ValueError(f"{arch.name}: TransformerPopulation trains transformers only")
        unknown = sorted({r.activation for r in runs} - {"relu", "tanh"})
        if unknown:
            raise ValueError(f"{arch.name}: unknown activations {unknown}; use relu or tanh")
        self.arch = arch
        self.n = len(runs)
        self.flat = flat
        acts = {r.activation for r in runs}
        self.activation = acts.pop() if len(acts) == 1 else None  # None: mixed, per network
        self.relu = torch.tensor([r.activation == "relu" for r in runs], device=flat.device)
        self.relu = self.relu.view(-1, 1, 1, 1)
        self.keep = torch.tensor([1.0 - r.dropout for r in runs], device=flat.device)
        self.keep = self.keep.view(-1, 1, 1, 1)
        self.dropout = any(r.dropout > 0 for r in runs)
        self.heads = arch.layers[2].heads

    def forward(
        self, x: torch.Tensor, per_network: bool, training: bool = False,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Logits (N, B, O). `x` is either images (B, C, H, W) shared by every network, or
        with `per_network` images (B, N, H, W, C) (channels last), each network its own."""
        arch, n = self.arch, self.n
        params = split_params(arch, self.flat)
        w, b = params[0]  # (N, D, C, p, p), (N, T, D)
        d, c, p = w.shape[1], w.shape[2], w.shape[3]
        if per_network:
            bsz, _, hh, ww, _ = x.shape
            patches = x.reshape(bsz, n, hh // p, p, ww // p, p, c).permute(1, 0, 2, 4, 6, 3, 5)
        else:
            bsz, _, hh, ww = x.shape
            patches = x.reshape(1, bsz, c, hh // p, p, ww // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        patches = patches.reshape(patches.shape[0], bsz * (hh // p) * (ww // p), c * p * p)
        h = torch.matmul(patches, w.reshape(n, d, -1).transpose(1, 2))  # (N, B * patches, D)
        h = h.view(n, bsz, -1, d)  # (N, B, patches, D)
        if arch.layers[-2].pool == "cls":
            h = F.pad(h, (0, 0, 1, 0))  # (N, B, T, D): the class token in front
        h = h + b[:, None]  # each token's input embedding
        for i in range(1, len(arch.layers) - 2, len(BLOCK)):
            (g1, c1), q, k, v, o, (g2, c2), m1, m2 = params[i : i + len(BLOCK)]
            a = self._attention(_norm(h, g1, c1), q, k, v, o)
            h = h + a
            m = _linear(_norm(h, g2, c2), *m1)  # (N, B, T, M)
            m = self._activate(m, training, gen)
            h = h + _linear(m, *m2)
        h = _norm(h, *params[-2])
        h = h[:, :, 0] if arch.layers[-2].pool == "cls" else h.mean(dim=2)  # (N, B, D)
        return _linear(h, *params[-1])  # (N, B, O)

    def _attention(self, h: torch.Tensor, *qkvo: tuple[torch.Tensor, torch.Tensor]
                   ) -> torch.Tensor:
        """Multi-head self-attention of every network: h (N, B, T, D) -> (N, B, T, D), with
        the (weight (N, out, in), bias (N, out)) of q, k, v and o."""
        q, k, v, o = qkvo

        def split(t: torch.Tensor) -> torch.Tensor:  # (N, B, T, heads * e) -> (N, B, heads, T, e)
            return t.unflatten(-1, (self.heads, -1)).transpose(2, 3)

        qh, kh, vh = (split(_linear(h, *wb)) for wb in (q, k, v))
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1])  # (N, B, heads, T, T)
        out = torch.softmax(scores, dim=-1) @ vh  # (N, B, heads, T, ev)
        return _linear(out.transpose(2, 3).flatten(start_dim=-2), *o)

    def _activate(
        self, m: torch.Tensor, training: bool, gen: torch.Generator | None
    ) -> torch.Tensor:
        """Each network's MLP activation, then (training) its dropout; m (N, B, T, M)."""
        if self.activation is not None:
            m = ACTIVATIONS[self.activation](m)
        else:
            m = torch.where(self.relu, torch.relu(m), torch.tanh(m))
        if training and self.dropout:
            draw = torch.rand(m.shape, generator=gen, device=m.device)
            m = m * ((draw < self.keep) / self.keep)
        return m

    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As `Population.evaluate`: correct (N, n) and loss (N, n), on images x (m, C, H, W)
        shared by all networks, or with `rows` (N, n) of images x (m, H, W, C) per network."""
        _, tokens = self.arch.tokens()
        widest = max(la.fan_out for la in self.arch.layers)
        chunk = max(1, EVAL_ELEMENTS // (self.n * tokens * widest))
        return evaluate_chunked(self.forward, self.n, x, y, rows, chunk)


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Every network's dense layer: h (N, ..., in), w (N, out, in), b (N, out) -> (N, ..., out)."""
    n, *mid, f = h.shape
    out = torch.baddbmm(b.unsqueeze(1), h.reshape(n, -1, f), w.transpose(1, 2))
    return out.view(n, *mid, w.shape[1])


def _norm(h: torch.Tensor, g: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Every network's layer norm over the last axis: h (N, B, T, D), gain / bias (N, D)."""
    shape = (h.shape[0],) + (1,) * (h.dim() - 2) + (h.shape[-1],)
    return F.layer_norm(h, h.shape[-1:], eps=LN_EPS) * g.view(shape) + c.view(shape)


def network_logits(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """A network's logits on a split, `EVAL_BATCH` examples per forward, as checkpoints are
    scored (a whole split of up to 1,000 in one go): `accuracy(network_logits(zoo.module(i),
    x), y)` reproduces the recorded value exactly."""
    with torch.no_grad():
        return torch.cat([net(x[s : s + EVAL_BATCH]) for s in range(0, len(x), EVAL_BATCH)])


def exact_correct_and_loss(
    arch: Architecture, flat: np.ndarray, activation: str, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One network through `functional_forward` as `Zoo.module` runs it, via `network_logits`:
    the recorded accuracy is then exactly what the stored network computes."""
    params = [(w.clone(), b.clone()) for w, b in arch.unflatten(torch.from_numpy(flat))]
    logits = network_logits(lambda xb: functional_forward(arch, params, xb, activation), x)
    return correct_and_loss(logits, y)


@dataclass
class RunStart:
    """A run's own randomness, all from `RunSpec.seed`: initial weights, then its training
    subset (a `train_fraction` of the examples), then one shuffle of that subset per epoch."""

    flat: torch.Tensor
    subset: torch.Tensor
    gen: torch.Generator

    def epoch_order(self) -> torch.Tensor:
        """The next epoch's example order (indices into the training split)."""
        return self.subset[torch.randperm(len(self.subset), generator=self.gen)]


def run_start(run: RunSpec, n_train: int) -> RunStart:
    """Initial weights and training subset of `run` on a training split of `n_train` examples."""
    gen = torch.Generator().manual_seed(run.seed)
    flat = init_flat(run.arch, run.w_init, run.init_std, gen)
    n_sub = max(1, round(run.train_fraction * n_train))
    return RunStart(flat, torch.randperm(n_train, generator=gen)[:n_sub], gen)


@dataclass
class GroupResult:
    """A trained group: weights (K checkpoints, N, P), per-checkpoint metrics (K, N), and the
    weights after the last epoch (N, P) even when it is no checkpoint."""

    flats: np.ndarray
    metrics: dict[str, np.ndarray]
    final: np.ndarray


def train_group(
    arch: Architecture,
    runs: Sequence[RunSpec],
    data: Dataset,
    epochs: int,
    checkpoints: Sequence[int],
    batch_size: int,
    seed: int,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> GroupResult:
    """Train `runs` (one architecture, one train fraction) together and evaluate checkpoints
    (epochs; 0 is before training; none is allowed, e.g. to time training alone).

    `seed` drives the group's dropout noise; everything else per network comes from its own
    `RunSpec.seed`. On the CPU each checkpoint is evaluated one network at a time, so recorded
    accuracies equal `Zoo.module`'s; on other devices by the fused pass, in that device's
    arithmetic. `on_epoch(n)` is called after each epoch with the number of networks.
    """
    device = torch.device(device)
    fractions = {r.train_fraction for r in runs}
    if len(fractions) != 1:
        raise ValueError(f"a group trains one train fraction, got {sorted(fractions)}")
    n_train = len(data.y_train)
    starts = [run_start(r, n_train) for r in runs]
    flat0 = torch.stack([st.flat for st in starts])
    subsets = torch.stack([st.subset for st in starts])
    n_sub = subsets.shape[1]

    xs_cpu = {"train": torch.tensor(data.x_train), "test": torch.tensor(data.x_test)}
    ys_cpu = {"train": torch.tensor(data.y_train), "test": torch.tensor(data.y_test)}
    xs = {k: v.to(device) for k, v in xs_cpu.items()}
    ys = {k: v.to(device) for k, v in ys_cpu.items()}
    flat = flat0.to(device).requires_grad_(True)
    pop = (TransformerPopulation if arch.transformer else Population)(arch, runs, flat)
    opt = PopulationOptimizer(runs, arch, device)
    drop_gen = torch.Generator(device=device).manual_seed(seed)

    keep = sorted(set(checkpoints))
    if keep and (keep[0] < 0 or keep[-1] > epochs):
        raise ValueError(f"checkpoints {keep} must lie within epochs 0..{epochs}")
    n, k = len(runs), len(keep)
    flats = np.empty((k, n, arch.n_params), np.float32)
    names = ("test_accuracy", "test_loss", "train_accuracy", "train_loss")
    metrics = {m: np.empty((k, n)) for m in names}
    x_train, y_train = xs["train"].permute(0, 2, 3, 1).contiguous(), ys["train"]

    def checkpoint(slot: int) -> None:
        snap = flat.detach().cpu().numpy().copy()
        flats[slot] = snap
        for split in ("test", "train"):
            if device.type == "cpu":  # exact: each network alone, as Zoo.module computes it
                results = [
                    exact_correct_and_loss(arch, snap[j], r.activation, *(
                        (xs_cpu[split], ys_cpu[split]) if split == "test"
                        else (xs_cpu["train"][subsets[j]], ys_cpu["train"][subsets[j]])))
                    for j, r in enumerate(runs)
                ]
                correct = torch.stack([c for c, _ in results])
                loss = torch.stack([lo for _, lo in results])
            elif split == "test":
                correct, loss = pop.evaluate(xs["test"], ys["test"])
            else:
                correct, loss = pop.evaluate(x_train, y_train, subsets.to(device))
            correct, loss = correct.cpu(), loss.cpu().double()
            metrics[f"{split}_accuracy"][slot] = correct.sum(1).numpy() / correct.shape[1]
            metrics[f"{split}_loss"][slot] = loss.mean(1).numpy()

    slot = 0
    if keep and keep[0] == 0:
        checkpoint(0)
        slot = 1
    for epoch in range(1, epochs + 1):
        order = torch.stack([st.epoch_order() for st in starts]).to(device)
        for start in range(0, n_sub, batch_size):
            idx = order[:, start : start + batch_size]
            logits = pop.forward(x_train[idx.T], per_network=True, training=True, gen=drop_gen)
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y_train[idx].reshape(-1), reduction="sum"
            ) / idx.shape[1]
            (grad,) = torch.autograd.grad(loss, flat)
            opt.step(flat.data, grad)
        if slot < k and keep[slot] == epoch:
            checkpoint(slot)
            slot += 1
        if on_epoch is not None:
            on_epoch(n)
    return GroupResult(flats, metrics, flat.detach().cpu().numpy())
