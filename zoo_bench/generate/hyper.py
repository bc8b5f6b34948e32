"""Per-run hyperparameters sampled as in the Small CNN Zoo, and the architecture families.

Each run's values come from its own seed sequence (zoo seed, dataset, family, run index), so a
run's configuration does not depend on how many runs the zoo has or how they are grouped.
The image families (CNNs and `vit`) share one set of training hyperparameters (`RunSpec`); the
`inr` family (SIRENs fitted to sine waves) has its own (`InrRunSpec`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from zoo_bench.arch import Architecture
from zoo_bench.families import (
    CTC_WIDTHS,
    cnn_small,
    ctc,
    ctc_widths,
    mixed,
    siren,
    siren_with_omega,
    vit,
)

OPTIMIZERS = ("sgd", "adam", "rmsprop")
NEWER_PREFIXES = ("vit_", "inr_")  # search-space fields hashed only when set (`to_dict`)
W_INITS = ("he_normal", "orthogonal", "glorot_normal", "normal", "truncated_normal")


@dataclass(frozen=True)
class SearchSpace:
    """Ranges runs are drawn from; (lo, hi) pairs are log-uniform except `dropout` (uniform)."""

    optimizers: tuple[str, ...] = OPTIMIZERS
    learning_rate: tuple[float, float] = (5e-4, 5e-2)
    l2reg: tuple[float, float] = (1e-8, 1e-2)
    w_inits: tuple[str, ...] = W_INITS
    init_std: tuple[float, float] = (1e-3, 0.5)
    dropout: tuple[float, float] = (0.0, 0.7)
    activations: tuple[str, ...] = ("relu", "tanh")
    train_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    mixed_depths: tuple[int, ...] = (2, 3, 4)
    mixed_widths: tuple[int, ...] = (4, 8, 12, 16)
    # vit: blocks, model width and heads (only those dividing the width) drawn per run
    vit_depths: tuple[int, ...] = (1, 2)
    vit_widths: tuple[int, ...] = (8, 12, 16)
    vit_heads: tuple[int, ...] = (1, 2)
    # inr: SIREN shape, omega_0 and Adam's learning rate (log-uniform) and full-batch steps.
    # Ranges where the fits succeed (in the 1,000-run inr preset zoo 2 % of the fits end with
    # test MSE above 0.01, against 41 % with depth 1-3, learning rates from 1e-4 and 100-400
    # steps): a network that has not fitted its wave carries no trace of its frequency.
    inr_depths: tuple[int, ...] = (2, 3)
    inr_widths: tuple[int, ...] = (8, 16, 32)
    inr_omegas: tuple[float, ...] = (5.0, 10.0, 20.0, 30.0)
    inr_learning_rate: tuple[float, float] = (1e-3, 5e-3)
    inr_steps: tuple[int, ...] = (200, 400)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpace:
        """Defaults overridden by a preset's `[generate.<preset>.space]` table."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown search-space keys {unknown}; known keys: {sorted(known)}")
        space = replace(cls(), **{k: tuple(v) for k, v in d.items()})
        for name in ("optimizers", "w_inits"):
            allowed = OPTIMIZERS if name == "optimizers" else W_INITS
            bad = sorted(set(getattr(space, name)) - set(allowed))
            if bad:
                raise ValueError(f"search space {name}: unknown {bad}; choose from {allowed}")
        return space

    def to_dict(self, keep: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields that define a zoo (part of its configuration hash). The vit / inr fields
        are left out while they hold their defaults, so zoos of the CNN families keep the
        hashes (and stay complete) they had before those families existed; fields starting
        with a prefix in `keep` stay in (a family's own fields, see `ZooConfig.to_dict`)."""
        d = asdict(self)
        for f in fields(self):
            newer = f.name.startswith(NEWER_PREFIXES) and not f.name.startswith(keep)
            if newer and d[f.name] == f.default:
                del d[f.name]
        return d


@dataclass(frozen=True)
class RunSpec:
    """One training run: its architecture and every hyperparameter the trainer needs."""

    index: int
    arch: Architecture
    optimizer: str
    learning_rate: float
    l2reg: float
    w_init: str
    init_std: float
    dropout: float
    activation: str
    train_fraction: float
    seed: int

    def hp_columns(self) -> dict[str, Any]:
        """The run's `hp_*` table columns (typed), as the zoo store records them."""
        cols: dict[str, Any] = {
            "hp_optimizer": self.optimizer,
            "hp_learning_rate": self.learning_rate,
            "hp_l2reg": self.l2reg,
            "hp_w_init": self.w_init,
            "hp_init_std": self.init_std,
            "hp_dropout": self.dropout,
            "hp_activation": self.activation,
            "hp_train_fraction": self.train_fraction,
            "hp_seed": self.seed,
        }
        convs = [la for la in self.arch.layers if la.kind == "conv2d"]
        if self.arch.family == "mixed":
            cols["hp_num_layers"] = len(convs)
        if self.arch.family in ("mixed", "ctc_widths"):
            cols["hp_num_units"] = convs[0].fan_out
        if self.arch.transformer:
            attn = next(la for la in self.arch.layers if la.kind == "attn_q")
            cols["hp_depth"] = sum(la.kind == "attn_q" for la in self.arch.layers)
            cols["hp_width"] = self.arch.layers[0].fan_out
            cols["hp_heads"] = attn.heads
        return cols

    def group_key(self) -> tuple[str, float]:
        """Runs with equal keys can train in one group: one architecture and train fraction
        (so every network takes the same number of steps)."""
        return (self.arch.name, self.train_fraction)

    def order_key(self) -> tuple:
        """Order inside a group: each (dropout on, activation) kind contiguous."""
        return (self.dropout > 0, self.activation, self.index)

    def property_columns(self) -> dict[str, float]:
        """Properties beyond the trainer's metrics: none for image classifiers."""
        return {}


def _fixed(make: Callable[..., Architecture]) -> Callable[..., Architecture]:
    return lambda rng, space, in_channels, size: make(in_channels=in_channels, size=size)


def _mixed(rng: np.random.Generator, space: SearchSpace, in_channels: int, size: int):
    depth = int(rng.choice(space.mixed_depths))
    width = int(rng.choice(space.mixed_widths))
    return mixed(depth, width, in_channels=in_channels, size=size)


def _ctc_widths(rng: np.random.Generator, space: SearchSpace, in_channels: int, size: int):
    return ctc_widths(int(rng.choice(CTC_WIDTHS)), in_channels=in_channels, size=size)


VIT_PATCH = 4  # every vit run splits its 16x16 images into 4x4 patches (16 tokens + class token)


def _vit(rng: np.random.Generator, space: SearchSpace, in_channels: int, size: int):
    depth = int(rng.choice(space.vit_depths))
    width = int(rng.choice(space.vit_widths))
    heads = [h for h in space.vit_heads if width % h == 0]
    if not heads:
        raise ValueError(f"vit: no head count in {space.vit_heads} divides width {width}")
    return vit(depth, width, int(rng.choice(heads)), patch=VIT_PATCH, size=size,
               in_channels=in_channels)


def _inr(rng: np.random.Generator, space: SearchSpace, in_channels: int, size: int):
    """The SIREN a run trains (its own omega_0); `sample_run` stores it with omega_0 folded."""
    depth = int(rng.choice(space.inr_depths))
    width = int(rng.choice(space.inr_widths))
    return siren(depth, width, float(rng.choice(space.inr_omegas)), in_features=in_channels)


# family name -> (rng, space, in_channels, image size) -> the run's architecture
# (for `inr`, in_channels is the number of input coordinates and size is unused)
FAMILIES: dict[str, Callable[[np.random.Generator, SearchSpace, int, int], Architecture]] = {
    "ctc": _fixed(ctc),
    "cnn_small": _fixed(cnn_small),
    "mixed": _mixed,
    "ctc_widths": _ctc_widths,
    "vit": _vit,
    "inr": _inr,
}
INR_FAMILIES = ("inr",)  # families fitted to signals (`InrRunSpec`), not trained on images


@dataclass(frozen=True)
class InrRunSpec:
    """One INR run: a SIREN fitted with full-batch Adam for `steps` steps to the sine wave
    sin(2 pi frequency x + phase) on coordinates x in [-1, 1] (`zoo_bench.generate.inr`).

    `arch` is the stored architecture; the run trains the same SIREN with `omega_0` in its sine
    layers and stores its weights scaled to `arch`'s omega_0 (same function): zoos store SIRENs
    with omega_0 = 1, so the weights alone hold the frequencies a network computes."""

    index: int
    arch: Architecture
    learning_rate: float
    steps: int
    frequency: float
    phase: float
    seed: int
    omega_0: float = 1.0

    @property
    def activation(self) -> str:
        """What the zoo records as `hp_activation` (a SIREN's hidden layers are sines)."""
        return "sine"

    def group_key(self) -> tuple[str, float]:
        """Runs with equal keys can train in one group: one architecture and omega_0."""
        return (self.arch.name, self.omega_0)

    def order_key(self) -> tuple:
        return (self.index,)

    def hp_columns(self) -> dict[str, Any]:
        """The run's `hp_*` table columns (typed)."""
        sines = [la for la in self.arch.layers if la.kind == "sine"]
        return {
            "hp_optimizer": "adam",
            "hp_learning_rate": self.learning_rate,
            "hp_steps": self.steps,
            "hp_omega_0": self.omega_0,
            "hp_width": sines[0].fan_out,
            "hp_depth": len(sines),
            "hp_activation": self.activation,
            "hp_seed": self.seed,
        }

    def property_columns(self) -> dict[str, float]:
        """The target's own values, stored as properties beside the fit's losses."""
        return {"frequency": self.frequency, "phase": self.phase}


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _stable_id(text: str) -> int:
    return zlib.crc32(text.encode())


def sample_run(
    index: int, family: str, dataset: str, seed: int, in_channels: int, size: int,
    space: SearchSpace = SearchSpace(),
) -> RunSpec | InrRunSpec:
    """Run `index` of the zoo (seed, dataset, family): deterministic, independent of other runs.

    For an INR family the run draws its target wave's frequency and phase from the dataset's
    ranges (`zoo_bench.generate.inr`), after its architecture and training settings."""
    sampler = FAMILIES.get(family)
    if sampler is None:  # a plug-in family (entry-point group zoo_bench.families)
        from zoo_bench.errors import RegistryError
        from zoo_bench.registry import FAMILIES as FAMILY_REGISTRY

        try:
            sampler = FAMILY_REGISTRY.get(family)
        except RegistryError as e:
            raise ValueError(str(e)) from None
    rng = np.random.default_rng([seed, _stable_id(dataset), _stable_id(family), index])
    arch = sampler(rng, space, in_channels, size)
    if family in INR_FAMILIES:
        from zoo_bench.generate.datasets import load_signal

        signal = load_signal(dataset)
        learning_rate = _log_uniform(rng, space.inr_learning_rate)
        steps = int(rng.choice(space.inr_steps))
        frequency, phase = signal.draw(rng)
        omega_0 = float(arch.layers[0].omega_0)
        return InrRunSpec(index, siren_with_omega(arch, 1.0), learning_rate, steps, frequency,
                          phase, seed=int(rng.integers(2**31 - 1)), omega_0=omega_0)
    return RunSpec(
        index=index,
        arch=arch,
        optimizer=str(rng.choice(space.optimizers)),
        learning_rate=_log_uniform(rng, space.learning_rate),
        l2reg=_log_uniform(rng, space.l2reg),
        w_init=str(rng.choice(space.w_inits)),
        init_std=_log_uniform(rng, space.init_std),
        dropout=float(rng.uniform(*space.dropout)),
        activation=str(rng.choice(space.activations)),
        train_fraction=float(rng.choice(space.train_fractions)),
        seed=int(rng.integers(2**31 - 1)),
    )


def sample_runs(
    n_runs: int, family: str, dataset: str, seed: int, in_channels: int, size: int,
    space: SearchSpace = SearchSpace(),
) -> list[RunSpec | InrRunSpec]:
    """Runs 0..n_runs-1 of one zoo."""
    return [sample_run(i, family, dataset, seed, in_channels, size, space) for i in range(n_runs)]
