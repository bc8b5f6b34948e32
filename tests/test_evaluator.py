"""The evaluator: each metric against hand-computed values, ties included, and its input checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from zoo_bench import Evaluator
from zoo_bench.errors import EvaluationError
from zoo_bench.evaluator import kendall_tau

Y_TRUE = [1.0, 2.0, 2.0, 3.0, 4.0]
Y_PRED = [1.0, 3.0, 2.0, 2.0, 5.0]


def tau_b_by_hand(x, y):
    """Count concordant, discordant and one-sided tied pairs: (C - D) / sqrt((C+D+Tx)(C+D+Ty))."""
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[j] - x[i]), np.sign(y[j] - y[i])
        if sx == 0 and sy == 0:
            continue
        if sx == 0:
            tx += 1
        elif sy == 0:
            ty += 1
        elif sx == sy:
            c += 1
        else:
            d += 1
    return (c - d) / math.sqrt((c + d + tx) * (c + d + ty))


def test_tau_b_with_ties_matches_the_pair_count():
    # 10 pairs: 7 concordant, 1 discordant, 1 tied in y_true only, 1 tied in y_pred only.
    assert tau_b_by_hand(Y_TRUE, Y_PRED) == pytest.approx(6 / 9)
    assert kendall_tau(Y_TRUE, Y_PRED) == pytest.approx(6 / 9)
    x, y = [3, 1, 1, 2, 5], [2, 2, 1, 3, 3]
    assert kendall_tau(x, y) == pytest.approx(tau_b_by_hand(x, y))


def test_every_metric_on_a_small_example():
    scores = Evaluator(n_boot=200).eval(Y_TRUE, Y_PRED)
    assert scores["kendall_tau"] == pytest.approx(6 / 9)
    # ranks: y_true (1, 2.5, 2.5, 4, 5), y_pred (1, 4, 2.5, 2.5, 5); Pearson of ranks = 7.25 / 9.5
    assert scores["spearman"] == pytest.approx(7.25 / 9.5)
    # residuals (0, -1, 0, 1, -1): SS_res = 3; y_true mean 2.4: SS_tot = 5.2
    assert scores["r2"] == pytest.approx(1 - 3 / 5.2)
    assert scores["mae"] == pytest.approx(3 / 5)
    assert scores["n"] == 5
    assert scores["kendall_tau_lo"] <= scores["kendall_tau"] <= scores["kendall_tau_hi"]


def test_bootstrap_interval_is_deterministic_and_tightens_with_data():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    noisy = y + rng.normal(size=200)
    a, b = Evaluator(n_boot=100).eval(y, noisy), Evaluator(n_boot=100).eval(y, noisy)
    assert a == b
    assert a["kendall_tau_lo"] < a["kendall_tau"] < a["kendall_tau_hi"]
    other_seed = Evaluator(n_boot=100, seed=1).eval(y, noisy)
    assert other_seed["kendall_tau_lo"] != a["kendall_tau_lo"]
    small = Evaluator(n_boot=100).eval(y[:20], noisy[:20])
    assert (small["kendall_tau_hi"] - small["kendall_tau_lo"]) > (
        a["kendall_tau_hi"] - a["kendall_tau_lo"]
    )
    perfect = Evaluator(n_boot=50).eval(y[:30], 2 * y[:30] + 1)
    assert perfect["kendall_tau_lo"] == pytest.approx(1.0)
    assert perfect["kendall_tau_hi"] == pytest.approx(1.0)


def test_accepts_numpy_torch_lists_and_column_vectors():
    want = Evaluator(n_boot=10).eval(Y_TRUE, Y_PRED)
    assert Evaluator(n_boot=10).eval(torch.tensor(Y_TRUE), np.array(Y_PRED)) == want
    column = Evaluator(n_boot=10).eval(np.array(Y_TRUE)[:, None], torch.tensor(Y_PRED)[:, None])
    assert column == want


def test_constant_predictions_rank_nothing():
    scores = Evaluator(n_boot=10).eval(Y_TRUE, [0.5] * 5)
    assert scores["kendall_tau"] == 0.0 and scores["spearman"] == 0.0
    assert Evaluator(n_boot=10).eval([2.0, 2.0], [2.0, 2.0])["r2"] == 1.0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "y_true has 3 values but y_pred has 2"),
        ([1.0, 2.0, 3.0], [1.0, np.nan, np.inf], "y_pred has 2 non-finite value"),
        ([np.nan, 2.0, 3.0], [1.0, 2.0, 3.0], "y_true has 1 non-finite value"),
        (np.ones((3, 2)), [1.0, 2.0, 3.0], r"y_true has shape \(3, 2\)"),
        ([1.0], [1.0], "at least 2 networks"),
        (["a", "b"], [1.0, 2.0], "y_true must hold numbers"),
    ],
)
def test_bad_input_names_the_input_and_the_problem(y_true, y_pred, message):
    with pytest.raises(EvaluationError, match=message):
        Evaluator(n_boot=10).eval(y_true, y_pred)


def test_contract_describes_inputs_and_every_output():
    text = Evaluator.contract()
    for key in ("y_true", "y_pred", "kendall_tau_lo", "kendall_tau_hi", "spearman", "r2", "mae"):
        assert key in text


def test_every_network_can_be_drawn_by_the_bootstrap():
    # Only the last network is ranked wrongly: a resampler that never draws it (integers(0, n-1))
    # would see perfect rankings in every resample and report the interval [1, 1].
    t = np.arange(6.0)
    p = np.array([0.0, 1.0, 2.0, 3.0, 4.0, -10.0])
    scores = Evaluator(n_boot=400).eval(t, p)
    assert scores["kendall_tau_lo"] < 0.5 < 0.9 < scores["kendall_tau_hi"]


def test_bootstrap_interval_is_the_central_95_percent():
    # An independent bootstrap (its own generator, many draws) gives the 2.5 / 97.5 % and the
    # 5 / 95 % percentiles; the Evaluator's bounds must sit at the first pair, not the second.
    rng = np.random.default_rng(123)
    t = rng.normal(size=60)
    p = t + rng.normal(size=60)
    scores = Evaluator(n_boot=4000).eval(t, p)
    ref_rng = np.random.default_rng(2024)
    taus = np.array([kendall_tau(t[idx], p[idx]) for idx in
                     (ref_rng.integers(0, len(t), size=len(t)) for _ in range(4000))])
    q025, q05, q95, q975 = np.percentile(taus, [2.5, 5, 95, 97.5])
    assert abs(scores["kendall_tau_lo"] - q025) < abs(scores["kendall_tau_lo"] - q05)
    assert abs(scores["kendall_tau_hi"] - q975) < abs(scores["kendall_tau_hi"] - q95)
    assert abs(scores["kendall_tau_lo"] - q025) < 0.4 * (q05 - q025)
    assert abs(scores["kendall_tau_hi"] - q975) < 0.4 * (q975 - q95)
