"""DeepSets: a network's weights as a set of (value, layer context) elements, phi -> pool -> rho."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from baselines.features import element_layout, meta_width, stratified_indices
from baselines.statnn import mlp
from zoo_bench import LAYER_KINDS, Architecture, Batch, PredictorError, TorchPredictor, Zoo

CLIP = 10.0
Layout = tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]], torch.Tensor]


class SetModel(nn.Module):
    """phi (per element) -> mean or sum pool -> rho (per network)."""

    def __init__(self, n_in: int, hidden: int, pool: str, dropout: float):
        super().__init__()
        self.phi = nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.rho = mlp(hidden, hidden, 1, dropout)
        self.pool = pool

    def forward(self, elements: torch.Tensor) -> torch.Tensor:
        h = self.phi(elements)
        h = h.mean(dim=1) if self.pool == "mean" else h.sum(dim=1)
        return self.rho(h).squeeze(-1)


class DeepSets(TorchPredictor):
    """Each weight is one set element: its value scaled by sqrt(fan-in) and clipped to +-10,
    with is_bias, is_conv, relative depth, log fan-in and a one-hot of its layer slot
    (`baselines.features.element_layout`; slots make nets of any depth share one space).

    For speed each network is subsampled: `elements_per_tensor` elements drawn with
    replacement from every weight and bias tensor, fresh each training batch (torch's RNG,
    seeded by the fit seed), and `eval_elements_per_tensor` fixed ones for prediction (drawn
    once from a generator seeded by the fit seed), so the same seed gives the same predictions.

    Transformers and INRs: every layer's weights and biases are elements like any other (a
    layer norm's gains have fan-in 1, a patch embedding's token embeddings its patch fan-in);
    a training zoo with such layers adds a one-hot of the kind (sine, patch embedding, layer
    norm, q, k, v, o, MLP in / out) to each element's context. A model fitted on CNNs reads
    them too, seeing only their depth, fan-in and bias flag.
    """

    defaults: ClassVar[dict[str, Any]] = {
        **TorchPredictor.defaults,
        "lr": 3e-3, "hidden": 64, "pool": "mean", "dropout": 0.0, "first_layers": 3,
        "elements_per_tensor": 32, "eval_elements_per_tensor": 128,
    }
    supports_note = "any network (conv2d / linear, ViT and SIREN kinds)"

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        pool = self.hparams()["pool"]
        if pool not in ("mean", "sum"):
            raise PredictorError(f"DeepSets: pool must be 'mean' or 'sum', got {pool!r}")
        self._layouts: dict[Architecture, Layout] = {}
        self._eval_seed = 0
        self._new_kinds = False

    def _layout(self, batch: Batch) -> Layout:
        """(meta, scale, spans, fixed eval indices) of the batch's architecture, on the device."""
        arch = batch.arch
        if arch not in self._layouts:
            meta, scale, spans = element_layout(arch, int(self.hparams()["first_layers"]),
                                                self._new_kinds)
            gen = torch.Generator().manual_seed(self._eval_seed)
            fixed = stratified_indices(spans, int(self.hparams()["eval_elements_per_tensor"]), gen)
            self._layouts[arch] = (meta.to(self.device), scale.to(self.device), spans,
                                   fixed.to(self.device))
        return self._layouts[arch]

    def build_model(self, train: Zoo) -> nn.Module:
        h = self.hparams()
        self._layouts = {}
        assert self.fit_context is not None
        self._eval_seed = self.fit_context.seed
        self._new_kinds = any(layer.kind not in LAYER_KINDS for a in train.arch_groups()
                              for layer in train.architectures[a].layers)
        n_in = 1 + meta_width(int(h["first_layers"]), self._new_kinds)
        return SetModel(n_in, int(h["hidden"]), str(h["pool"]), float(h["dropout"]))

    def forward(self, batch: Batch) -> torch.Tensor:
        assert self.model is not None
        meta, scale, spans, fixed = self._layout(batch)
        if batch.training:
            idx = stratified_indices(spans, int(self.hparams()["elements_per_tensor"]))
            idx = idx.to(batch.device)
        else:
            idx = fixed
        values = (batch.flat()[:, idx] * scale[idx]).clamp(-CLIP, CLIP)
        elements = torch.cat(
            [values.unsqueeze(-1), meta[idx].unsqueeze(0).expand(len(batch), -1, -1)], dim=-1
        )
        return self.model(elements)
