"""What a method declares about its hyperparameters, as data: valid ranges and search spaces.

`Bound` says which values are valid at all (a learning rate above 0, a step count of at least 1),
so bad settings are refused before any work. `Float`, `Int` and `Choice` say where a tuner
searches; a search space may also cover budget keys (`max_steps`, `max_epochs`), so that "long
enough to converge" is part of what is searched. A predictor declares both as class attributes
(`Predictor.bounds`, `Predictor.search_space`); plug-ins do the same in their own package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bound:
    """Valid values of one hyperparameter: a closed or open interval, or a set of choices."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None

    def problem(self, value: Any) -> str | None:
        """Why `value` is out of bounds (None when it is valid; None values are not judged)."""
        if value is None:
            return None
        if self.choices is not None:
            return None if value in self.choices else f"must be one of {list(self.choices)}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"must be {'>' if self.low_open else '>='} {self.low}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"must be {'<' if self.high_open else '<='} {self.high}"
        return None


POSITIVE = Bound(low=0, low_open=True)
AT_LEAST_ONE = Bound(low=1)
NON_NEGATIVE = Bound(low=0)
UNIT_INTERVAL = Bound(low=0, high=1)


@dataclass(frozen=True)
class Float:
    """A real-valued search dimension on [low, high], sampled on a log scale when `log`."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    """An integer search dimension on [low, high] (inclusive), on a log scale when `log`."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """A categorical search dimension over `values` (JSON values)."""

    values: tuple[Any, ...]


Dimension = Float | Int | Choice
