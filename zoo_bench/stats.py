"""Statistics over seeds: mean and spread of a score, and whether one method's lead is real.

The leaderboard reports mean +- unbiased std over a fixed seed list (OGB's rule) and uses
`paired_comparison` to say whether the leader beats the runner-up on the same seeds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import stats

from zoo_bench.errors import EvaluationError

ALPHA = 0.05
WILCOXON_MIN_N = 6


class Aggregate(NamedTuple):
    """Mean, unbiased (n - 1) standard deviation and count of one score over seeds."""

    mean: float
    std: float
    n: int


def aggregate(values: Iterable[float] | Mapping[Hashable, float]) -> Aggregate:
    """Mean, unbiased std (NaN for a single value) and n of per-seed scores.

    Missing scores must be left out by the caller, never passed as NaN: a NaN is an error,
    so a method that skipped seeds cannot quietly average over fewer of them.
    """
    vals = list(values.values()) if isinstance(values, Mapping) else list(values)
    arr = np.asarray(vals, dtype=np.float64)
    if arr.ndim != 1 or not len(arr):
        raise EvaluationError("aggregate needs a non-empty list of per-seed scores")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise EvaluationError(
            f"aggregate got {bad} non-finite score(s) of {len(arr)}; leave missing seeds out "
            "and report them as missing instead"
        )
    std = float(arr.std(ddof=1)) if len(arr) > 1 else math.nan
    return Aggregate(float(arr.mean()), std, len(arr))


@dataclass(frozen=True)
class PairedComparison:
    """Method a against method b on the seeds both have: per-seed a - b and a paired test.

    `test` is "wilcoxon" (n >= 6), "t-test" (2 <= n < 6) or "none" (n < 2, p is NaN);
    `unpaired` lists seeds that only one side has (left out of everything else).
    """

    seeds: list[Hashable]
    diffs: dict[Hashable, float]
    signs: dict[Hashable, int]
    mean_diff: float
    p_value: float
    test: str
    significant: bool
    alpha: float = ALPHA
    unpaired: list[Hashable] = field(default_factory=list)

    @property
    def wins(self) -> int:
        """Seeds on which a scored higher than b."""
        return sum(s > 0 for s in self.signs.values())

    @property
    def losses(self) -> int:
        """Seeds on which a scored lower than b."""
        return sum(s < 0 for s in self.signs.values())


def paired_comparison(
    a: Mapping[Hashable, float], b: Mapping[Hashable, float], alpha: float = ALPHA
) -> PairedComparison:
    """Compare two methods' per-seed scores ({seed: score}) on their common seeds.

    The test is two-sided. Wilcoxon's signed-rank test assumes nothing about the shape of the
    differences, but with n seeds its smallest possible p-value is 2 / 2**n, which is above
    0.05 for n <= 5: it could never call a lead significant on the usual 5 seeds. Below 6 seeds
    the paired t-test is used instead; it assumes roughly normal differences. All-zero
    differences give p = 1; identical non-zero differences give the t-test's limit p = 0.
    """
    seeds = sorted(set(a) & set(b), key=str)
    unpaired = sorted(set(a) ^ set(b), key=str)
    diffs = {s: float(a[s]) - float(b[s]) for s in seeds}
    d = np.array(list(diffs.values()), dtype=np.float64)
    if not np.isfinite(d).all():
        raise EvaluationError("paired_comparison got non-finite scores; leave missing seeds out")
    signs = {s: int(np.sign(v)) for s, v in diffs.items()}
    mean_diff = float(d.mean()) if len(d) else math.nan
    if len(d) < 2:
        test, p = "none", math.nan
    elif not d.any():
        test, p = ("wilcoxon" if len(d) >= WILCOXON_MIN_N else "t-test"), 1.0
    elif len(d) >= WILCOXON_MIN_N:
        test, p = "wilcoxon", float(stats.wilcoxon(d).pvalue)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            test, p = "t-test", float(stats.ttest_1samp(d, 0.0).pvalue)
    return PairedComparison(
        seeds=seeds,
        diffs=diffs,
        signs=signs,
        mean_diff=mean_diff,
        p_value=p,
        test=test,
        significant=bool(p < alpha),
        alpha=alpha,
        unpaired=unpaired,
    )
