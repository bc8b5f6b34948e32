"""The predictor contract: an abstract base class, its fit context, and the registry of methods.

A predictor is fitted on a training zoo (with a validation zoo for model selection) and then
predicts one value per network of any zoo it can read: `supports(arch)` says before fit which
architectures a method handles at all, `can_predict(arch)` after fit which ones the fitted model
can read (by default the same). Methods arrive by name, either through
`@register_predictor("name")` or through the entry-point group `zoo_bench.predictors`; the core
never imports a method's package by name.
"""

from __future__ import annotations

import abc
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from zoo_bench.arch import Architecture
from zoo_bench.errors import RegistryError, ZooBenchError
from zoo_bench.registry import PREDICTORS, Entry, same_definition
from zoo_bench.space import Bound, Dimension
from zoo_bench.store import Zoo

ENTRY_POINT_GROUP = PREDICTORS.group
DEVICES = ("cpu", "cuda", "auto")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class PredictorError(ZooBenchError):
    """A predictor was misused: unknown hyperparameter, predict before fit, bad output."""


@dataclass(frozen=True)
class Budget:
    """How long a fit may train: at most `max_epochs` epochs and `max_seconds` wall seconds.

    None leaves that limit to the method's own default (epochs) or removes it (seconds).
    """

    max_epochs: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        epochs, seconds = self.max_epochs, self.max_seconds
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise PredictorError(f"Budget.max_epochs must be an int >= 1 or None, got {epochs!r}")
        if seconds is not None and not seconds > 0:
            raise PredictorError(f"Budget.max_seconds must be > 0 or None, got {seconds!r}")


@dataclass(frozen=True)
class FitContext:
    """What a fit needs besides data: seed, device ("cpu", "cuda", "auto"), budget, progress bar."""

    seed: int = 0
    device: str = "auto"
    budget: Budget = field(default_factory=Budget)
    progress: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int | np.integer) or isinstance(self.seed, bool):
            raise PredictorError(f"FitContext.seed must be an int, got {self.seed!r}")
        if self.device not in DEVICES and not re.fullmatch(r"cuda:\d+", str(self.device)):
            raise PredictorError(
                f"FitContext.device {self.device!r} is not one of {DEVICES} (or 'cuda:N')"
            )
        if not isinstance(self.budget, Budget):
            raise PredictorError(
                f"FitContext.budget must be a Budget, got {type(self.budget).__name__}"
            )


class Predictor(abc.ABC):
    """Base class of every property predictor: `fit` on train/val zoos, then `predict` any zoo.

    Subclasses declare their hyperparameters with defaults in `defaults`; `__init__` merges the
    given ones over them and rejects unknown names. `fit` and `predict` are checked for you:
    predicting before fitting raises, and predictions must be one float per row of `zoo.table`.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    supports_note: ClassVar[str] = "any architecture"
    # valid values of hyperparameters (and budget keys): bad settings are refused before work
    bounds: ClassVar[dict[str, Bound]] = {}
    # where a tuner searches: hyperparameters and budget keys (`zoo_bench.space`)
    search_space: ClassVar[dict[str, Dimension]] = {}

    def __init__(self, **hparams: Any) -> None:
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise PredictorError(
                f"{type(self).__name__} has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"known hyperparameters: {known}"
            )
        merged = {**self.defaults, **hparams}
        for key, value in hparams.items():
            _check_hparam_type(type(self).__name__, key, self.defaults[key], value)
        try:
            json.dumps(merged)
        except TypeError as e:
            raise PredictorError(
                f"{type(self).__name__} hyperparameters must be JSON values (numbers, strings, "
                f"lists, dicts): {e}"
            ) from None
        self._hparams = merged
        self._fitted = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for meth, wrap in (("fit", _checked_fit), ("predict", _checked_predict)):
            fn = cls.__dict__.get(meth)
            if fn is not None and not getattr(fn, "_zoo_bench_checked", False):
                setattr(cls, meth, wrap(fn))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hparams.items())
        return f"{type(self).__name__}({args})"

    @property
    def fitted(self) -> bool:
        """True once `fit` has returned successfully."""
        return self._fitted

    def supports(self, arch: Architecture) -> bool:
        """Before fit: can this method be trained on, or consume, networks of `arch` at all?

        Must not depend on fitted state. `fit` refuses a training zoo with an unsupported
        architecture; the runner stores cells whose train/val zoos it does not support as
        `not_applicable` without fitting. Fixed-architecture methods override.
        """
        return True

    def fit_problem(self, train: Zoo, val: Zoo) -> str | None:
        """Before fit: why this method cannot train on these zoos together (None: it can).

        For limits that no single architecture shows, e.g. one model per layer structure and
        a zoo that mixes several. The runner stores such cells as `not_applicable` with this
        reason instead of fitting; `fit` should refuse the same zoos. Default: None.
        """
        return None

    def can_predict(self, arch: Architecture) -> bool:
        """After fit: can the *fitted* model read networks of `arch`? (default: `supports(arch)`)

        Override when what was learned limits the readable architectures, e.g. an encoder
        whose parameters are tied to the depth or layer shapes of the training networks.
        `predict` refuses a zoo with an architecture this rejects; the runner asks it for each
        target zoo after fit and stores those cells as `not_applicable`.
        """
        return self.supports(arch)

    @abc.abstractmethod
    def fit(self, train: Zoo, val: Zoo, target: str, ctx: FitContext) -> None:
        """Learn to predict property `target` from `train`'s weights; `val` selects the model."""

    @abc.abstractmethod
    def predict(self, zoo: Zoo) -> np.ndarray:
        """One float per row of `zoo.table`, in the units of the fitted target."""

    def hparams(self) -> dict[str, Any]:
        """The hyperparameters in effect (defaults merged with the given ones), as a plain dict."""
        return json.loads(json.dumps(self._hparams))

    def n_parameters(self) -> int:
        """Trainable parameters of every `torch.nn.Module` this predictor holds (0 if none)."""
        import torch

        seen: set[int] = set()
        total = 0
        for value in vars(self).values():
            if isinstance(value, torch.nn.Module):
                for p in value.parameters():
                    if p.requires_grad and id(p) not in seen:
                        seen.add(id(p))
                        total += p.numel()
        return total


def _check_hparam_type(owner: str, key: str, default: Any, value: Any) -> None:
    """Scalar hyperparameters keep their default's type (an int is accepted for a float)."""
    if default is None or value is None or isinstance(default, list | dict | tuple):
        return
    want: tuple[type, ...] = (int, float) if isinstance(default, float) else (type(default),)
    if isinstance(value, bool) and not isinstance(default, bool):
        ok = False
    else:
        ok = isinstance(value, want)
    if not ok:
        raise PredictorError(
            f"{owner} hyperparameter {key!r} must be {type(default).__name__} "
            f"(default {default!r}), got {value!r}"
        )


def _checked_fit(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def fit(self: Predictor, train: Zoo, val: Zoo, target: str, ctx: FitContext) -> None:
        who = type(self).__name__
        for label, zoo in (("train", train), ("val", val)):
            if not isinstance(zoo, Zoo):
                raise PredictorError(f"{who}.fit: {label} must be a Zoo, got {type(zoo).__name__}")
        if len(train) == 0:
            raise PredictorError(f"{who}.fit: the training zoo is empty; check the split")
        if target not in train.table.columns:
            raise PredictorError(
                f"{who}.fit: target {target!r} is not a column of zoo {train.name}; "
                f"its properties are {train.properties}"
            )
        if not isinstance(ctx, FitContext):
            raise PredictorError(f"{who}.fit: ctx must be a FitContext, got {type(ctx).__name__}")
        unsupported = [a for a in train.arch_groups() if not self.supports(train.architectures[a])]
        if unsupported:
            raise PredictorError(
                f"{who} does not support architectures {unsupported} ({self.supports_note}); "
                "filter the zoo or pick another method"
            )
        self._fitted = False
        fn(self, train, val, target, ctx)
        self._fitted = True

    fit._zoo_bench_checked = True  # type: ignore[attr-defined]
    return fit


def _checked_predict(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def predict(self: Predictor, zoo: Zoo) -> np.ndarray:
        who = type(self).__name__
        if not getattr(self, "_fitted", False):
            raise PredictorError(
                f"{who} is not fitted: call fit(train, val, target, ctx) before predict"
            )
        if not isinstance(zoo, Zoo):
            raise PredictorError(f"{who}.predict needs a Zoo, got {type(zoo).__name__}")
        unreadable = [a for a in zoo.arch_groups() if not self.can_predict(zoo.architectures[a])]
        if unreadable:
            raise PredictorError(
                f"the fitted {who} cannot read architectures {unreadable} of zoo {zoo.name} "
                "(can_predict is False); predict only zoos it can read, or refit on them"
            )
        out = np.asarray(fn(self, zoo), dtype=np.float64)
        if out.shape != (len(zoo),):
            raise PredictorError(
                f"{who}.predict returned shape {out.shape}; it must return one float per row "
                f"of zoo.table, shape ({len(zoo)},)"
            )
        return out

    predict._zoo_bench_checked = True  # type: ignore[attr-defined]
    return predict


# --- registry (one `zoo_bench.registry.Registry`, shared with tasks, importers, ...) --------

P = TypeVar("P", bound=type[Predictor])
PredictorInfo = Entry  # name, obj (the class, None if it failed to load), origin, error


def register_predictor(name: str) -> Callable[[P], P]:
    """Class decorator: register a `Predictor` subclass under `name` and set its `name`."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RegistryError(
            f"predictor name {name!r} must be lower-case letters, digits, '_' or '-' "
            "(it is typed on the command line)"
        )

    def deco(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, Predictor)):
            raise RegistryError(
                f"@register_predictor({name!r}) needs a subclass of zoo_bench.Predictor, "
                f"got {cls!r}"
            )
        origin = f"{cls.__module__}.{cls.__qualname__} (decorator)"
        return PREDICTORS.register(name, cls, origin, same=same_definition)

    return deco


def describe_predictors(refresh: bool = False) -> dict[str, Entry]:
    """Every known name with its origin, including plug-ins that failed to load (with the error)."""
    return PREDICTORS.describe(refresh)


def available_predictors(refresh: bool = False) -> dict[str, type[Predictor]]:
    """Name -> class of every usable predictor: entry points (loaded once) plus decorated classes.

    `refresh=True` re-reads the installed entry points (after installing a plug-in at runtime).
    """
    return PREDICTORS.available(refresh)


def get_predictor(name: str) -> type[Predictor]:
    """The class registered as `name`; a typo gets a "did you mean" and the list of names."""
    return PREDICTORS.get(name)
