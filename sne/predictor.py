"""SNEPredictor: the Set-based Neural network Encoder as a zoo-bench predictor plug-in.

Registered through the entry point `sne = "sne.predictor:SNEPredictor"`. Training is the shared
`zoo_bench.training` loop (MSE on the standardised target, AdamW, model selection on validation
Kendall's tau); SNE adds its Logit Invariance penalty through the loop's loss hook.

The penalty compares *full* encodings (every chunk of every layer) of w and g.w for the first
`li_batch` networks of a step, never two independent chunk subsamples: otherwise it penalises
sampling noise (65-83 % of it, measured) rather than the missing invariance.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sne.encoder import SNEConfig, SNEEncoder
from sne.symmetry import apply_transform, logit_invariance_penalty, sample_transform
from zoo_bench import (
    LAYER_KINDS,
    Architecture,
    Batch,
    PredictorError,
    TorchPredictor,
    TrainConfig,
    Zoo,
    epoch_steps,
    usable_positions,
)

CONFIG_KEYS = tuple(SNEConfig.__dataclass_fields__)
SPREAD_SAMPLE = 64


def weight_spread(zoo: Zoo) -> float:
    """Root mean square of sqrt(fan-in) * weight over (up to) the first 64 usable networks:
    the values SNE's lift sees before its fitted scale."""
    pos = usable_positions(zoo)[:SPREAD_SAMPLE]
    sq, n = 0.0, 0
    for group in zoo.arch_groups(pos).values():
        arch = zoo.architecture_of(int(group[0]))
        flats = torch.from_numpy(zoo.flat_batch(group)).double()
        for layer, (w, b) in zip(arch.layers, arch.unflatten(flats), strict=True):
            fan = float(np.prod(layer.weight_shape[1:]))
            sq += fan * float(w.square().sum() + b.square().sum())
            n += w.numel() + b.numel()
    rms = (sq / n) ** 0.5 if n else 0.0
    return rms if rms > 1e-12 else 1.0


def has_new_kinds(zoo: Zoo) -> bool:
    """Whether any architecture of `zoo` has a layer beyond conv2d / linear (then the encoder
    learns its own type code for each such kind, `SNEEncoder(new_kinds=True)`)."""
    return any(layer.kind not in LAYER_KINDS
               for a in zoo.arch_groups() for layer in zoo.architectures[a].layers)


class SNEPredictor(TorchPredictor):
    """SNE (Andreis et al., NeurIPS 2024): pad-chunk-encode, chunk -> layer -> network set
    encoders, depth and layer-type encodings, Logit Invariance.

    Ablation switches: `logit_invariance` (penalty weight lambda; 0 turns it off), `positional`,
    `hierarchy`, `chunk_size`, `log_features`; `chunk_budget` bounds the chunks encoded at once.
    `li_batch` networks per step enter the invariance penalty (full encodings of w and g.w).

    The training length is set in optimiser steps (`max_steps`, `patience_steps`), turned into
    epochs of the shared loop from the batches of an epoch (`epoch_steps`: one architecture per
    batch, so a zoo mixing architectures has more of them), so a small zoo still gets enough
    steps and a large one does not run for dozens of epochs; `max_epochs` / `patience`, when
    given (or a suite budget's max_epochs), take precedence.

    Any architecture: transformer and INR layers are chunked like the others (a patch
    embedding's unit with its column of token embeddings) and carry their own layer-type code
    when the training zoo has them, else their base kind's (`sne.encoder`), so a model fitted on
    CNNs reads a ViT and one fitted on ViTs reads a CNN. Logit Invariance uses each
    architecture's symmetry, per-head attention permutations and sine sign flips included.
    """

    defaults: ClassVar[dict[str, Any]] = {
        **TorchPredictor.defaults,
        "lr": 2e-3, "batch_size": 8, "max_epochs": None, "patience": None,
        "max_steps": 1000, "patience_steps": 250,
        **SNEConfig().to_dict(),
        "logit_invariance": 0.1, "li_batch": 4, "min_steps": 600,
    }
    supports_note = "any network (conv2d / linear, ViT and SIREN kinds)"

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        h = self.hparams()
        try:
            self.config = SNEConfig(**{k: h[k] for k in CONFIG_KEYS})
        except ValueError as e:
            raise PredictorError(f"SNEPredictor: {e}") from None
        if float(h["logit_invariance"]) < 0:
            raise PredictorError("SNEPredictor: logit_invariance must be >= 0 (0 turns it off)")
        if int(self.hparams()["li_batch"]) < 1:
            raise PredictorError("SNEPredictor: li_batch must be >= 1 (networks per step in the "
                                 "invariance penalty; logit_invariance=0 turns it off)")
        self._symmetry_rng = torch.Generator()
        self._epoch_steps = 1

    def train_config(self) -> TrainConfig:
        """Epochs and patience from the step budget and the training zoo's size (see class)."""
        h = self.hparams()
        steps_per_epoch = self._epoch_steps
        epochs = h["max_epochs"] or math.ceil(int(h["max_steps"]) / steps_per_epoch)
        patience = h["patience"] or math.ceil(int(h["patience_steps"]) / steps_per_epoch)
        return TrainConfig(
            lr=float(h["lr"]), weight_decay=float(h["weight_decay"]),
            batch_size=int(h["batch_size"]), max_epochs=int(epochs), patience=int(patience),
            min_steps=int(h["min_steps"]), min_spread=float(h["min_spread"]),
        )

    def prepare(self, train: Zoo) -> np.ndarray:
        """Per-fit state every SNE model needs (the symmetry sampler's seed, the steps of an
        epoch for the step budget); returns the training zoo's usable positions."""
        assert self.fit_context is not None
        self._symmetry_rng = torch.Generator().manual_seed(int(self.fit_context.seed))
        pos = usable_positions(train)
        self._epoch_steps = max(1, epoch_steps(train, pos, int(self.hparams()["batch_size"])))
        return pos

    def build_model(self, train: Zoo) -> nn.Module:
        self.prepare(train)
        model = SNEEncoder(self.config, new_kinds=has_new_kinds(train))
        model.weight_scale.fill_(1.0 / weight_spread(train))
        return model

    def logits(
        self, model: nn.Module, arch: Architecture, flats: torch.Tensor, all_chunks: bool = False
    ) -> torch.Tensor:
        """Predictions (B,) for flats (B, P) of one architecture (`all_chunks`: no subsampling)."""
        return model([(arch, flats)], all_chunks=all_chunks)

    def forward(self, batch: Batch) -> torch.Tensor:
        assert self.model is not None
        return self.logits(self.model, batch.arch, batch.flat())

    def loss_hook(self, model: nn.Module, batch: Batch, pred: torch.Tensor) -> torch.Tensor:
        """lambda * mean (f(w) - f(g.w))^2 over the first `li_batch` networks of the batch (in
        shuffled order), g drawn from each network's symmetry group, full encodings."""
        lam = float(self.hparams()["logit_invariance"])
        if lam == 0:
            return pred.new_zeros(())
        k = min(len(batch), int(self.hparams()["li_batch"]))
        activations = batch.zoo.table["hp_activation"].to_numpy()[batch.positions[:k]]
        g = sample_transform(batch.arch, [str(a) for a in activations], self._symmetry_rng)
        moved = apply_transform(batch.arch, batch.flat()[:k], g)
        return lam * self.invariance_penalty(model, batch, pred, moved)

    def invariance_penalty(
        self, model: nn.Module, batch: Batch, pred: torch.Tensor, moved: torch.Tensor
    ) -> torch.Tensor:
        """mean (f(w_i) - f(moved_i))^2 over the first len(moved) networks of `batch`, both from
        every chunk: zero (to float tolerance) when `moved` is w itself, in any training mode,
        so the penalty measures only how much the encoder's output changes under `moved`."""
        k, arch = len(moved), batch.arch
        if model.subsamples(arch):  # the step's pred saw a chunk subsample: encode w in full too
            base = self.logits(model, arch, batch.flat()[:k], all_chunks=True)
        else:
            base = pred[:k]
        return logit_invariance_penalty(base, self.logits(model, arch, moved, all_chunks=True))
