"""FlatMLP: the flattened weight vector, standardised per coordinate, into an MLP."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from baselines.statnn import mlp
from zoo_bench import Batch, Standardizer, TorchPredictor, TrainConfig, Zoo, usable_positions

CLIP = 10.0


class FlatMLP(TorchPredictor):
    """Every weight is one input: flat vectors zero-padded to the longest training network,
    standardised per coordinate on the training split (clipped to +-10), followed by a 0/1
    mask of which coordinates the network really has, so mixed architectures share one input.

    With `magnitudes` the standardised |w| are inputs too: weights have random signs across
    networks, so their size carries the signal, and a ReLU MLP fitted on a few hundred nets
    cannot recover it from the signed values alone (on the ci zoos this lifts tau by ~0.07).
    The input layer learns `input_lr_scale` times slower than the rest, which limits how far
    its many weights can overfit.

    A network longer than the longest training network is cut to that length (the mask then
    marks every input as present): the method runs on any architecture, ViTs and SIRENs
    included (their flat vectors are read like any other), but across architectures its inputs
    mean little: coordinate i of a CNN and of a ViT are unrelated weights.
    """

    defaults: ClassVar[dict[str, Any]] = {
        **TorchPredictor.defaults,
        "lr": 3e-4, "input_lr_scale": 0.1, "hidden": 256, "layers": 2, "dropout": 0.2,
        "weight_decay": 1e-2, "magnitudes": True,
    }
    supports_note = "any network (padded / cut to the training length)"

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        self.length = 0
        self.input_scaler: Standardizer | None = None

    def _padded(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, length) inputs and their (B, length) mask from flat vectors of any length."""
        b, p = flat.shape
        n = min(p, self.length)
        x = torch.zeros(b, self.length, device=flat.device)
        mask = torch.zeros(b, self.length, device=flat.device)
        x[:, :n] = flat[:, :n]
        mask[:, :n] = 1.0
        return x, mask

    def build_model(self, train: Zoo) -> nn.Module:
        h = self.hparams()
        pos = usable_positions(train)
        self.length = max(train.architectures[a].n_params for a in train.arch_groups(pos))
        rows = []
        for group in train.arch_groups(pos).values():
            x, mask = self._padded(torch.from_numpy(train.flat_batch(group)))
            rows.append(torch.where(mask > 0, x, torch.nan))
        self.input_scaler = Standardizer(torch.cat(rows), clip=CLIP)
        n_in = (3 if h["magnitudes"] else 2) * self.length
        return mlp(n_in, int(h["hidden"]), int(h["layers"]), float(h["dropout"]))

    def optimizer(self, model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
        """AdamW with the first (input) layer's learning rate scaled by `input_lr_scale`."""
        first = list(model[0].parameters())
        first_ids = {id(q) for q in first}
        rest = [p for p in model.parameters() if id(p) not in first_ids]
        return torch.optim.AdamW(
            [{"params": first, "lr": config.lr * float(self.hparams()["input_lr_scale"])},
             {"params": rest}],
            lr=config.lr, weight_decay=config.weight_decay,
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        assert self.model is not None and self.input_scaler is not None
        x, mask = self._padded(batch.flat())
        z = self.input_scaler.transform(x) * mask
        parts = [z, z.abs(), mask] if self.hparams()["magnitudes"] else [z, mask]
        return self.model(torch.cat(parts, dim=1)).squeeze(-1)
