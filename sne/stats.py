"""sne_stats: SNE's set encoding with per-layer weight statistics beside it at the head.

Registered separately (`sne_stats = "sne.stats:SNEStatsPredictor"`); it never replaces `sne`,
which stays the paper's method. The statistics are the core's (`zoo_bench.features`, the same
StatNN uses), computed per batch from the weights the encoder sees, so the Logit Invariance
penalty compares f(w) with f(g.w) for the whole model, statistics included (a sign flip of tanh
units changes a tensor's mean and quantiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from sne.encoder import SNEConfig, SNEEncoder
from sne.predictor import SNEPredictor, weight_spread
from zoo_bench import (
    LAYER_KINDS,
    Architecture,
    Standardizer,
    Zoo,
    network_statistics,
    statnn_dim,
    statnn_features,
    statnn_kinds,
)


class SNEWithStats(nn.Module):
    """Network vector (d) of an SNE encoder and an embedding (d) of the standardised statistics
    -> MLP head -> one logit per network."""

    def __init__(self, config: SNEConfig, n_stats: int, scaler: Standardizer, k: int,
                 kinds: Sequence[str] = LAYER_KINDS):
        super().__init__()
        d = config.dim
        self.encoder = SNEEncoder(config, head=False, new_kinds=tuple(kinds) != LAYER_KINDS)
        self.stats = nn.Sequential(nn.Linear(n_stats, d), nn.GELU())
        self.head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))
        self.k, self.kinds = k, tuple(kinds)
        self.register_buffer("stats_mean", scaler.mean.float())
        self.register_buffer("stats_std", scaler.std.float())

    def subsamples(self, arch: Architecture) -> bool:
        return self.encoder.subsamples(arch)

    def forward(
        self, groups: Sequence[tuple[Architecture, torch.Tensor]], all_chunks: bool = False
    ) -> torch.Tensor:
        """Logits (B,) of (architecture, flats (B_a, P_a)) groups, in order."""
        v = self.encoder.encode(groups, all_chunks=all_chunks)  # (B, d)
        raw = torch.cat([network_statistics(a, f, self.k, self.kinds)
                         for a, f in groups])  # (B, n_stats)
        z = ((raw - self.stats_mean) / self.stats_std).clamp(-10.0, 10.0)
        return self.head(torch.cat([v, self.stats(z)], dim=1))[:, 0]


class SNEStatsPredictor(SNEPredictor):
    """SNE plus StatNN's per-layer weight statistics at the head (a variant of ours, not the
    paper's): `first_layers` sets the statistics' layer slots as in StatNN, and a training zoo
    with transformer or INR layers widens the pooled statistics to every kind, as in StatNN."""

    defaults: ClassVar[dict[str, Any]] = {**SNEPredictor.defaults, "first_layers": 3}

    def build_model(self, train: Zoo) -> nn.Module:
        pos = self.prepare(train)
        k = int(self.hparams()["first_layers"])
        kinds = statnn_kinds(train.architectures[a] for a in train.arch_groups(pos))
        scaler = Standardizer(statnn_features(train, pos, k=k, kinds=kinds), clip=10.0)
        model = SNEWithStats(self.config, statnn_dim(k, kinds), scaler, k, kinds)
        model.encoder.weight_scale.fill_(1.0 / weight_spread(train))
        return model
