"""Set Transformer blocks (Lee et al. 2019): MAB, SAB, ISAB, PMA, in two layouts.

Dense layout: sets padded to (n, length, d) with a key padding mask (chunk level, where every set
has at most c elements). Segment layout: elements of many sets in one flat (N, d) tensor with a
set id each, no padding (layer and network level, where set sizes range from 1 to ~10^5). The
segment form of attention keeps a flash-style softmax state (max, denominator, numerator), so
a set too large for memory can be streamed piece by piece and the pieces merged exactly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


class SoftmaxState(NamedTuple):
    """Running softmax-attention sums per (set, query, head); `merge` combines two pieces."""

    mx: torch.Tensor  # (S, m, h) running max score
    den: torch.Tensor  # (S, m, h) sum of exp(score - mx)
    num: torch.Tensor  # (S, m, h, dk) sum of exp(score - mx) * value


def merge(a: SoftmaxState | None, b: SoftmaxState) -> SoftmaxState:
    """Exact combination of the states of two disjoint pieces of the same sets."""
    if a is None:
        return b
    mx = torch.maximum(a.mx, b.mx)
    fa, fb = torch.exp(a.mx - mx), torch.exp(b.mx - mx)
    return SoftmaxState(mx, a.den * fa + b.den * fb, a.num * fa[..., None] + b.num * fb[..., None])


class MAB(nn.Module):
    """Pre-norm multihead attention block: H = X + Attn(q=LN(X), k=LN(Y), v=Y), out = H + rFF(H).

    Only attention queries/keys and the rFF input are normalised: values and the residual
    stream keep the scale of the weights they came from. (A post-norm block normalises every
    element's features and so erases weight magnitudes, the most telling statistic of a trained
    network.) rFF(H) = relu(W LN(H)). With `residual=False` (seeded blocks, whose queries are
    learned constants) H = Attn(...): a constant residual is only a bias of the projection `o`.
    """

    def __init__(self, dim: int, heads: int, residual: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be a multiple of heads {heads}")
        self.residual = residual
        self.heads, self.dk = heads, dim // heads
        self.ln_in = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        # no key/value bias: a key bias cancels in the softmax, a value bias passes through
        # the attention unchanged and is the same as a bias of `o`; dropping them saves a pass.
        # Separate k and v (not one fused kv) keep their gradients contiguous: no copy.
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.o = nn.Linear(dim, dim)
        self.ln_ff = nn.LayerNorm(dim)
        self.ff = nn.Linear(dim, dim)

    def _out(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h = x + self.o(attn) if self.residual else self.o(attn)
        return h + F.relu(self.ff(self.ln_ff(h)), inplace=True)

    def keys_values(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k(self.ln_in(y)), self.v(y)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Dense: queries x (n, lq, d) attend to y (n, lk, d); key_mask (n, lk) marks real keys."""
        xn = self.ln_in(x)
        yn = xn if y is x else self.ln_in(y)
        return self.attend(x, xn, self.k(yn), self.v(y), key_mask)

    def attend(
        self, x: torch.Tensor, xn: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Dense attention with given keys and values (n, lk, d); xn is LN(x)."""
        n, lq, d = x.shape
        lk = k.shape[1]
        q = self.q(xn).view(n, lq, self.heads, self.dk).transpose(1, 2)
        k = k.view(n, lk, self.heads, self.dk).transpose(1, 2)
        v = v.view(n, lk, self.heads, self.dk).transpose(1, 2)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self._out(x, a.transpose(1, 2).reshape(n, lq, d))

    def segment_state(
        self, seeds: torch.Tensor, y: torch.Tensor, seg: torch.Tensor, n_seg: int
    ) -> SoftmaxState:
        """Segment: shared queries seeds (m, d) attend to each set's elements y (N, d)."""
        m, n = seeds.shape[0], y.shape[0]
        q = self.q(self.ln_in(seeds)).view(m, self.heads, self.dk) / math.sqrt(self.dk)
        k, v = self.keys_values(y)
        k, v = k.view(n, self.heads, self.dk), v.view(n, self.heads, self.dk)
        s = torch.einsum("mhd,nhd->nmh", q, k)
        idx = seg[:, None, None].expand_as(s)
        mx = s.new_full((n_seg, m, self.heads), -torch.inf)
        mx = mx.scatter_reduce(0, idx, s.detach(), "amax")
        e = torch.exp(s - mx[seg])
        den = s.new_zeros(n_seg, m, self.heads).index_add(0, seg, e)
        num = s.new_zeros(n_seg, m, self.heads, self.dk)
        num = num.index_add(0, seg, e[..., None] * v[:, None])
        return SoftmaxState(mx, den, num)

    def segment_finish(self, seeds: torch.Tensor, state: SoftmaxState) -> torch.Tensor:
        """(S, m, d) outputs of the seeds for every set from its (merged) softmax state."""
        attn = (state.num / state.den[..., None]).flatten(2)
        return self._out(seeds.expand(attn.shape[0], -1, -1), attn)


class SAB(nn.Module):
    """Set attention block: every element attends to every (real) element of its set."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.mab = MAB(dim, heads)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.mab(x, x, key_mask)


class ISAB(nn.Module):
    """Induced set attention block: m inducing points summarise the set, elements read them back.

    Linear in the set size, and its summary step is a softmax reduction, so it streams.
    """

    def __init__(self, dim: int, heads: int, inducing: int):
        super().__init__()
        self.inducing = nn.Parameter(torch.empty(inducing, dim))
        nn.init.xavier_uniform_(self.inducing)
        self.mab_in = MAB(dim, heads, residual=False)
        self.mab_out = MAB(dim, heads)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Dense: x (n, l, d) -> (n, l, d)."""
        i = self.inducing.expand(x.shape[0], -1, -1)
        return self.mab_out(x, self.mab_in(i, x, key_mask))

    def summary_state(self, x: torch.Tensor, seg: torch.Tensor, n_seg: int) -> SoftmaxState:
        return self.mab_in.segment_state(self.inducing, x, seg, n_seg)

    def summary(self, state: SoftmaxState) -> torch.Tensor:
        """(S, m, d) inducing-point summaries of each set."""
        return self.mab_in.segment_finish(self.inducing, state)

    def read_back(self, x: torch.Tensor, summary: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """Each element x (N, d) attends to its own set's summary -> (N, d)."""
        mab = self.mab_out
        k, v = mab.keys_values(summary)  # per set, then gathered per element
        x = x[:, None]
        return mab.attend(x, mab.ln_in(x), k[seg], v[seg])[:, 0]

    def segments(self, x: torch.Tensor, seg: torch.Tensor, n_seg: int) -> torch.Tensor:
        """Segment layout in one go: x (N, d) with set ids seg (N,) -> (N, d)."""
        return self.read_back(x, self.summary(self.summary_state(x, seg, n_seg)), seg)


class PMA(nn.Module):
    """Pooling by multihead attention: k learned seeds attend to rFF(set) -> one (k*d) vector."""

    def __init__(self, dim: int, heads: int, seeds: int = 1):
        super().__init__()
        self.seeds = nn.Parameter(torch.empty(seeds, dim))
        nn.init.xavier_uniform_(self.seeds)
        self.rff = nn.Linear(dim, dim)
        self.mab = MAB(dim, heads, residual=False)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Dense: x (n, l, d) -> (n, k*d), padding excluded through key_mask."""
        s = self.seeds.expand(x.shape[0], -1, -1)
        return self.mab(s, F.relu(self.rff(x), inplace=True), key_mask).flatten(1)

    def state(self, x: torch.Tensor, seg: torch.Tensor, n_seg: int) -> SoftmaxState:
        return self.mab.segment_state(self.seeds, F.relu(self.rff(x), inplace=True), seg, n_seg)

    def finish(self, state: SoftmaxState) -> torch.Tensor:
        return self.mab.segment_finish(self.seeds, state).flatten(1)

    def segments(self, x: torch.Tensor, seg: torch.Tensor, n_seg: int) -> torch.Tensor:
        """Segment layout: x (N, d) with set ids seg (N,) -> (S, k*d)."""
        return self.finish(self.state(x, seg, n_seg))
