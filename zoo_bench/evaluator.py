"""Scoring predictions of a network property: Kendall's tau-b (the headline) and companions.

Every leaderboard number comes through `Evaluator.eval`, so its input checks and metric
definitions live in one place; `Evaluator.contract()` spells them out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from zoo_bench.errors import EvaluationError

CONTRACT = """\
Evaluator().eval(y_true, y_pred) -> dict

Input
  y_true  true property values (e.g. test accuracy) of the test networks
  y_pred  the method's predictions for the same networks, in the same order
  Both: numpy arrays, torch tensors or lists of numbers, shape (N,) or (N, 1), same N >= 2,
  every value finite (NaN / inf is an error naming the input and how many values are bad).

Output (floats, except n)
  kendall_tau     Kendall's tau-b between y_true and y_pred (ties counted as in scipy): headline
  kendall_tau_lo  2.5% percentile of tau-b over n_boot bootstrap resamples (fixed seed)
  kendall_tau_hi  97.5% percentile of the same
  spearman        Spearman's rank correlation
  r2              coefficient of determination, 1 - SS_res / SS_tot (sklearn's convention
                  when y_true is constant: 1.0 if the predictions are exact, else 0.0)
  mae             mean absolute error
  n               number of networks scored
  A constant y_true or y_pred ranks nothing: its tau and spearman are 0.0, not NaN.
"""


def _as_vector(values: Any, name: str) -> np.ndarray:
    """A float64 copy of a 1-D or (N, 1) numpy / torch / list input, or a clear error."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise EvaluationError(f"{name} must hold numbers ({e})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise EvaluationError(
            f"{name} has shape {arr.shape}; pass one value per network, shape (N,) or (N, 1)"
        )
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise EvaluationError(
            f"{name} has {bad} non-finite value(s) (NaN or inf) out of {len(arr)}; "
            "every network needs a finite value"
        )
    return arr


def _checked_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_vector(y_true, "y_true"), _as_vector(y_pred, "y_pred")
    if len(t) != len(p):
        raise EvaluationError(
            f"y_true has {len(t)} values but y_pred has {len(p)}; predict every test network once"
        )
    if len(t) < 2:
        raise EvaluationError(f"need at least 2 networks to rank, got {len(t)}")
    return t, p


def _tau_b(t: np.ndarray, p: np.ndarray) -> float:
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        return 0.0
    return float(stats.kendalltau(t, p, variant="b").statistic)


def kendall_tau(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b between true values and predictions (0.0 if either side is constant)."""
    return _tau_b(*_checked_pair(y_true, y_pred))


class Evaluator:
    """Scores one set of predictions: tau-b with a bootstrap interval, spearman, r2, mae.

    `n_boot` resamples (with replacement) give the 95% interval of tau; `seed` fixes them so
    the same inputs always give the same interval.
    """

    def __init__(self, n_boot: int = 1000, seed: int = 0):
        if n_boot < 1:
            raise EvaluationError(f"n_boot must be at least 1, got {n_boot}")
        self.n_boot = int(n_boot)
        self.seed = int(seed)

    @staticmethod
    def contract() -> str:
        """The expected input and output format, as text (printed by `zoo-bench tasks`)."""
        return CONTRACT

    def eval(self, y_true: Any, y_pred: Any) -> dict[str, float | int]:
        """Score predictions against true values; see `Evaluator.contract()`."""
        t, p = _checked_pair(y_true, y_pred)
        lo, hi = self._tau_interval(t, p)
        return {
            "kendall_tau": _tau_b(t, p),
            "kendall_tau_lo": lo,
            "kendall_tau_hi": hi,
            "spearman": _spearman(t, p),
            "r2": _r2(t, p),
            "mae": float(np.mean(np.abs(t - p))),
            "n": int(len(t)),
        }

    def _tau_interval(self, t: np.ndarray, p: np.ndarray) -> tuple[float, float]:
        rng = np.random.default_rng(self.seed)
        taus = np.empty(self.n_boot)
        for k in range(self.n_boot):
            idx = rng.integers(0, len(t), size=len(t))
            taus[k] = _tau_b(t[idx], p[idx])
        lo, hi = np.percentile(taus, [2.5, 97.5])
        return float(lo), float(hi)


def _spearman(t: np.ndarray, p: np.ndarray) -> float:
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        return 0.0
    return float(stats.spearmanr(t, p).statistic)


def _r2(t: np.ndarray, p: np.ndarray) -> float:
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot
