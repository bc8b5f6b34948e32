"""Shared training machinery for torch-based predictors, so each method writes only its model.

Seeding, device choice, minibatches of networks straight from a zoo's mapped weights (one
architecture per batch), target standardisation, and one fit loop: model selection on validation
Kendall's tau that never keeps a near-constant predictor, early stopping after a warm-up floor,
best-state restore, the `FitContext` budget and a progress bar.
`TorchPredictor` wires these into the `Predictor` contract: a subclass supplies `build_model`
and `forward` (a batch of networks -> one prediction each).
"""

from __future__ import annotations

import abc
import copy
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from zoo_bench.arch import Architecture
from zoo_bench.evaluator import kendall_tau
from zoo_bench.predictor import Budget, FitContext, Predictor, PredictorError
from zoo_bench.store import Zoo

logger = logging.getLogger(__name__)

__all__ = [
    "Batch", "Budget", "FitContext", "Standardizer", "TorchPredictor", "TrainConfig",
    "TrainResult", "adamw", "minibatches", "predict_model", "resolve_device", "seed_everything",
    "spread_ok", "train_model", "usable_positions",
]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch from one int; returns a numpy generator for data order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def resolve_device(device: str) -> torch.device:
    """"cpu", "cuda", "cuda:N" or "auto" (cuda when available) as a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PredictorError(
            f"device {device!r} was asked for but torch sees no CUDA GPU; "
            "use device='cpu' or 'auto'"
        )
    return torch.device(device)


def usable_positions(zoo: Zoo, target: str | None = None) -> np.ndarray:
    """Positions whose weights are finite (and whose `target`, if given, is finite)."""
    ok = ~zoo.table["nonfinite"].to_numpy(dtype=bool)
    if target is not None:
        ok &= np.isfinite(zoo.targets(target))
    return np.flatnonzero(ok)


def minibatches(
    zoo: Zoo, positions: Sequence[int] | np.ndarray, batch_size: int,
    rng: np.random.Generator | None = None,
) -> Iterator[np.ndarray]:
    """Positions in batches of one architecture each; shuffled (within and across) if `rng`."""
    chunks = []
    for pos in zoo.arch_groups(positions).values():
        if rng is not None:
            pos = pos[rng.permutation(len(pos))]
        chunks += [pos[i : i + batch_size] for i in range(0, len(pos), batch_size)]
    order = rng.permutation(len(chunks)) if rng is not None else range(len(chunks))
    for k in order:
        yield chunks[k]


def epoch_steps(zoo: Zoo, positions: Sequence[int] | np.ndarray, batch_size: int) -> int:
    """Optimiser steps in one epoch: the batches `minibatches` yields, one architecture each
    (a zoo mixing architectures takes more, smaller batches than len / batch_size)."""
    return sum(-(-len(pos) // batch_size) for pos in zoo.arch_groups(positions).values())


@dataclass
class Batch:
    """A minibatch of networks of one architecture, as the model's `forward` receives it."""

    zoo: Zoo
    positions: np.ndarray
    device: torch.device
    training: bool = False
    _flat: torch.Tensor | None = field(default=None, repr=False)

    @property
    def arch(self) -> Architecture:
        return self.zoo.architecture_of(int(self.positions[0]))

    def __len__(self) -> int:
        return len(self.positions)

    def flat(self) -> torch.Tensor:
        """The networks' flat weights, (B, P) float32 on the device; NaN / inf become 0."""
        if self._flat is None:
            x = np.nan_to_num(self.zoo.flat_batch(self.positions), nan=0.0, posinf=0.0, neginf=0.0)
            self._flat = torch.from_numpy(x).to(self.device)
        return self._flat

    def params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer (weight (B, ...), bias (B, ...)) in PyTorch layout, on the device."""
        return self.arch.unflatten(self.flat())


class Standardizer:
    """Column-wise (x - mean) / std fitted on training data, ignoring NaN entries.

    Constant columns get std 1 and all-NaN columns mean 0, std 1 (e.g. padding).
    """

    def __init__(self, values: np.ndarray | torch.Tensor, clip: float | None = None):
        x = torch.as_tensor(values, dtype=torch.float64)
        mean = torch.nanmean(x, dim=0)
        std = torch.nanmean((x - mean) ** 2, dim=0).sqrt()
        self.mean = torch.nan_to_num(mean, nan=0.0)
        self.std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.clip = clip

    def transform(self, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Standardised values (clipped to +-clip if set), on the input's device, float32."""
        x = torch.as_tensor(values)
        mean, std = self.mean.to(x.device, torch.float32), self.std.to(x.device, torch.float32)
        z = (x.float() - mean) / std
        return z.clamp(-self.clip, self.clip) if self.clip is not None else z

    def inverse(self, values: np.ndarray | torch.Tensor) -> np.ndarray:
        """Back to original units, as float64 numpy."""
        z = torch.as_tensor(values, dtype=torch.float64).cpu()
        return (z * self.std + self.mean).numpy()


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and stopping settings of `train_model` (AdamW on the standardised-target MSE)."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 150
    patience: int = 25
    grad_clip: float | None = 5.0
    eval_batch_size: int = 256
    min_steps: int = 0  # no early stop before this many optimiser steps (warm-up floor)
    min_spread: float = 0.2  # eligible checkpoint: std(val pred) >= min_spread * std(val target)


@dataclass
class TrainResult:
    """What a fit did: epochs and optimiser steps run, the selected epoch (and the step it
    ended at) with its validation tau, and why it stopped. `degenerate`: no epoch's validation
    predictions passed the spread rule, so the last state was kept (best_epoch is then the last
    epoch)."""

    epochs: int
    best_epoch: int
    best_val_tau: float
    stopped_by: str
    seconds: float
    history: list[dict[str, float]]
    steps: int = 0
    best_step: int = 0
    degenerate: bool = False


# Default warm-up floor of every TorchPredictor: 3x the longest plateau the baselines showed
# (deepsets on default-digits-ctc: val-prediction spread 0.006 at step 3, 0.33 by step 33).
MIN_STEPS = 100

Forward = Callable[[Batch], torch.Tensor]
LossHook = Callable[[nn.Module, Batch, torch.Tensor], torch.Tensor]


def predict_model(
    model: nn.Module, forward: Forward, zoo: Zoo, device: torch.device, batch_size: int = 256,
    positions: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """`forward` over `positions` (default: all rows) in eval mode; raw outputs, in row order."""
    pos = np.arange(len(zoo)) if positions is None else np.asarray(positions, dtype=np.int64)
    out = np.zeros(len(pos))
    where = {int(p): i for i, p in enumerate(pos)}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for b in minibatches(zoo, pos, batch_size):
            y = forward(Batch(zoo, b, device, training=False)).reshape(-1)
            out[[where[int(p)] for p in b]] = y.double().cpu().numpy()
    model.train(was_training)
    return out


def _val_score(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(tau, -MSE) on validation, compared in that order; diverged predictions rank last."""
    if len(y) < 2 or not np.isfinite(pred).all():
        return (-math.inf, -math.inf)
    return (kendall_tau(y, pred), -float(np.mean((y - pred) ** 2)))


def spread_ok(y: np.ndarray, pred: np.ndarray, min_spread: float) -> bool:
    """Whether predictions vary at least `min_spread` x as much as the targets (std ratio).

    A near-constant predictor can still score a high Kendall's tau from noise-level differences;
    the same rule `results_health.py` applies to test predictions keeps it from being selected.
    """
    if min_spread <= 0 or len(y) < 2:
        return True
    return bool(np.std(pred) >= min_spread * np.std(y))


def adamw(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over every parameter of `model` with the config's learning rate and weight decay."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def train_model(
    model: nn.Module,
    forward: Forward,
    train: Zoo,
    val: Zoo,
    target: str,
    ctx: FitContext,
    config: TrainConfig = TrainConfig(),
    extra_loss: LossHook | None = None,
    scaler: Standardizer | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[TrainResult, Standardizer]:
    """Fit `model` so that `forward(batch)` predicts the standardised `target`; restore the best.

    Each epoch walks the usable training networks (finite weights and target) in shuffled
    one-architecture minibatches, minimises MSE (+ `extra_loss(model, batch, pred)`, e.g. an
    invariance penalty), then scores validation Kendall's tau; the state with the best tau is
    kept (ties, common on small validation sets, go to the lower validation MSE), except that an
    epoch whose validation predictions have std < `config.min_spread` x the validation targets'
    is never selected (a near-constant predictor ranks by noise; if no epoch passes, the last
    state is kept and the result is marked `degenerate`). Stops after `ctx.budget.max_epochs`
    (else `config.max_epochs`) epochs, `config.patience` epochs without improvement of a selected
    state once at least `config.min_steps` optimiser steps have run, or
    `ctx.budget.max_seconds`. Seed the RNGs and build the model before calling
    (`seed_everything`); data order comes from `ctx.seed`. `optimizer` replaces the default
    AdamW(lr, weight_decay) of `config`, e.g. for per-layer learning rates.
    """
    device = resolve_device(ctx.device)
    model.to(device)
    rng = np.random.default_rng(ctx.seed)
    tr = usable_positions(train, target)
    if len(tr) == 0:
        raise PredictorError(
            f"zoo {train.name}: no training network has finite weights and a finite {target!r}"
        )
    va = usable_positions(val, target)
    scaler = scaler or Standardizer(train.targets(target, tr))
    y_all = scaler.transform(np.nan_to_num(train.targets(target))).to(device)
    y_val = scaler.transform(val.targets(target, va)).double().numpy()
    budget: Budget = ctx.budget
    max_epochs = budget.max_epochs or config.max_epochs
    opt = optimizer or adamw(model, config)
    best = ((-math.inf, -math.inf), 0, copy.deepcopy(model.state_dict()))
    steps = best_step = 0
    history: list[dict[str, float]] = []
    stopped_by, start, since_best, steps = "max_epochs", time.perf_counter(), 0, 0
    deadline = start + budget.max_seconds if budget.max_seconds is not None else math.inf
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
        transient=True, disable=not ctx.progress,
    )
    with progress:
        task = progress.add_task(f"fit {target}", total=max_epochs, status="")
        for epoch in range(1, max_epochs + 1):
            model.train()
            losses = []
            out_of_time = False
            for b in minibatches(train, tr, config.batch_size, rng):
                batch = Batch(train, b, device, training=True)
                pred = forward(batch).reshape(-1)
                loss = torch.mean((pred - y_all[torch.as_tensor(b, device=device)]) ** 2)
                if extra_loss is not None:
                    loss = loss + extra_loss(model, batch, pred)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                opt.step()
                steps += 1
                losses.append(float(loss.detach()))
                if time.perf_counter() > deadline:
                    out_of_time = True
                    break
            pred_val = predict_model(model, forward, val, device, config.eval_batch_size, va)
            score = _val_score(y_val, pred_val)
            tau = score[0]
            spread = float(np.std(pred_val) / max(np.std(y_val), 1e-12)) if len(va) > 1 else 0.0
            history.append({
                "epoch": epoch, "step": steps, "train_loss": float(np.mean(losses)),
                "val_tau": tau, "val_mse": -score[1], "val_spread": spread,
            })
            eligible = spread_ok(y_val, pred_val, config.min_spread)
            if eligible and (score > best[0] or len(va) < 2):
                best, since_best = (score, epoch, copy.deepcopy(model.state_dict())), 0
                best_step = steps
            elif best[1] > 0:  # patience runs only once a state has been selected
                since_best += 1
            progress.update(task, advance=1, status=f"val tau {tau:+.3f} (best {best[0][0]:+.3f})")
            if out_of_time:
                stopped_by = "max_seconds"
                break
            if since_best >= config.patience and steps >= config.min_steps:
                stopped_by = "patience"
                break
    degenerate = best[1] == 0
    if degenerate:  # no state passed the spread rule: keep the last one rather than pick by noise
        logger.warning(
            "fit %s: no epoch's validation predictions reached %s x the targets' spread; "
            "keeping the last state (train longer or check the inputs)", target, config.min_spread,
        )
        best = ((history[-1]["val_tau"], -history[-1]["val_mse"]), len(history), None)
        best_step = steps
    else:
        model.load_state_dict(best[2])
    model.eval()
    result = TrainResult(
        epochs=len(history), best_epoch=best[1], best_val_tau=float(best[0][0]),
        stopped_by=stopped_by, seconds=time.perf_counter() - start, history=history,
        steps=steps, best_step=best_step, degenerate=degenerate,
    )
    return result, scaler


class TorchPredictor(Predictor):
    """A `Predictor` trained with `train_model`: subclasses give `build_model` and `forward`.

    `build_model(train)` runs after seeding, so initialisation is reproducible; it may also fit
    input statistics on the training zoo. `forward(batch)` maps a `Batch` of networks to one
    prediction each (standardised target units). `loss_hook` may add regularisers.
    """

    defaults: ClassVar[dict[str, Any]] = {
        "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64, "max_epochs": 150, "patience": 25,
        "min_steps": MIN_STEPS, "min_spread": 0.2,
    }

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        self.model: nn.Module | None = None
        self.scaler: Standardizer | None = None
        self.device = torch.device("cpu")
        self.train_result: TrainResult | None = None
        self.fit_context: FitContext | None = None

    @abc.abstractmethod
    def build_model(self, train: Zoo) -> nn.Module:
        """A fresh model for this training zoo (input statistics may be fitted here)."""

    @abc.abstractmethod
    def forward(self, batch: Batch) -> torch.Tensor:
        """Predictions (B,) for a batch of networks of one architecture."""

    def loss_hook(self, model: nn.Module, batch: Batch, pred: torch.Tensor) -> torch.Tensor | None:
        """Extra loss term added to the MSE (None: no extra term)."""
        return None

    def optimizer(self, model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
        """The optimiser of `model` (default: `adamw`); override for e.g. per-layer rates."""
        return adamw(model, config)

    def train_config(self) -> TrainConfig:
        """The `TrainConfig` taken from this predictor's hyperparameters."""
        h = self.hparams()
        return TrainConfig(
            lr=float(h["lr"]), weight_decay=float(h["weight_decay"]),
            batch_size=int(h["batch_size"]), max_epochs=int(h["max_epochs"]),
            patience=int(h["patience"]), min_steps=int(h["min_steps"]),
            min_spread=float(h["min_spread"]),
        )

    def fit(self, train: Zoo, val: Zoo, target: str, ctx: FitContext) -> None:
        seed_everything(ctx.seed)
        self.fit_context = ctx
        self.device = resolve_device(ctx.device)
        self.model = self.build_model(train)
        hook = type(self).loss_hook is not TorchPredictor.loss_hook
        config = self.train_config()
        self.train_result, self.scaler = train_model(
            self.model.to(self.device), self.forward, train, val, target, ctx, config,
            extra_loss=self.loss_hook if hook else None,
            optimizer=self.optimizer(self.model, config),
        )

    def predict(self, zoo: Zoo) -> np.ndarray:
        assert self.model is not None and self.scaler is not None
        raw = predict_model(self.model, self.forward, zoo, self.device)
        return self.scaler.inverse(raw)
