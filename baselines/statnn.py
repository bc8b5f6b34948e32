"""StatNN: per-tensor weight statistics (Unterthiner et al. 2020) fed to an MLP."""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from zoo_bench import (
    Batch,
    Standardizer,
    TorchPredictor,
    Zoo,
    statnn_dim,
    statnn_features,
    statnn_kinds,
    usable_positions,
)


def mlp(n_in: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    """`layers` hidden ReLU layers of width `hidden` with dropout, then one output."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
    mods.append(nn.Linear(hidden if layers else n_in, 1))
    return nn.Sequential(*mods)


class StatNN(TorchPredictor):
    """Mean, variance and 0/25/50/75/100 percentiles of every weight and bias tensor -> MLP.

    For one architecture of depth k+1 these are exactly the paper's 7 x 2 x (k+1) statistics.
    Mixed architectures share one space: statistics of the first `first_layers` layers and of
    the last layer, the same statistics pooled over all conv / all linear tensors, presence
    flags, log parameter count and depth (see `zoo_bench.features.statnn_features`).
    Features are standardised on the training split and clipped to +-10.

    Transformers and INRs: a training zoo with any layer of another kind (sine, patch
    embedding, layer norm, attention q/k/v/o, MLP block) widens the pooled statistics to every
    kind (`statnn_kinds`), so each of those kinds gets its own weight and bias statistics; a
    CNN training zoo keeps the conv / linear features. Either model reads any architecture: one
    fitted on CNNs sees a ViT's layers only through its slots (first layers and head), its
    linear head pooled, its size and depth.

    Conventions, compared with nfn's `StatFeaturizer` (the NFN papers' StatNN): the variance
    is the population one (divisor n; nfn's is the sample variance, divisor n - 1, so on the
    real CIFAR-10-GS network ours times n/(n-1) equals theirs and mean and quantiles agree
    exactly, `tests/test_nfn.py`); every statistic then goes through sign-log1p, non-finite
    weights count as 0, and the pooled per-kind statistics, presence flags, log parameter count
    and depth are extras of ours.
    """

    defaults: ClassVar[dict[str, Any]] = {
        **TorchPredictor.defaults,
        "hidden": 128, "layers": 2, "dropout": 0.1, "first_layers": 3,
    }
    supports_note = "any network (conv2d / linear, ViT and SIREN kinds)"

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        self._features: weakref.WeakKeyDictionary[Zoo, torch.Tensor] = weakref.WeakKeyDictionary()
        self.input_scaler: Standardizer | None = None
        self.kinds: tuple[str, ...] = ()

    def features(self, zoo: Zoo) -> torch.Tensor:
        """Standardised statistics of every network of `zoo` (computed once per zoo object)."""
        if zoo not in self._features:
            raw = statnn_features(zoo, k=int(self.hparams()["first_layers"]), kinds=self.kinds)
            assert self.input_scaler is not None
            self._features[zoo] = self.input_scaler.transform(raw)
        return self._features[zoo]

    def build_model(self, train: Zoo) -> nn.Module:
        h = self.hparams()
        k = int(h["first_layers"])
        self._features = weakref.WeakKeyDictionary()
        pos = usable_positions(train)
        self.kinds = statnn_kinds(train.architectures[a] for a in train.arch_groups(pos))
        raw = statnn_features(train, pos, k=k, kinds=self.kinds)
        self.input_scaler = Standardizer(raw, clip=10.0)
        dim = statnn_dim(k, self.kinds)
        return mlp(dim, int(h["hidden"]), int(h["layers"]), float(h["dropout"]))

    def forward(self, batch: Batch) -> torch.Tensor:
        assert self.model is not None
        x = self.features(batch.zoo)[torch.as_tensor(np.asarray(batch.positions))]
        return self.model(x.to(batch.device)).squeeze(-1)
