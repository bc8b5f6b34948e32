"""Aggregation over seeds and the paired test the leaderboard uses to call a lead real."""

from __future__ import annotations

import math

import pytest

from zoo_bench.errors import EvaluationError
from zoo_bench.stats import aggregate, paired_comparison


def test_aggregate_is_mean_unbiased_std_and_count():
    mean, std, n = aggregate([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7)
    assert std == pytest.approx(0.2)  # sqrt((0.04 + 0 + 0.04) / 2)
    assert n == 3
    assert aggregate({0: 1.0, 1: 3.0}).std == pytest.approx(math.sqrt(2))


def test_aggregate_of_one_seed_has_no_spread():
    assert math.isnan(aggregate([0.4]).std)


def test_aggregate_refuses_missing_scores_passed_as_nan():
    with pytest.raises(EvaluationError, match="1 non-finite"):
        aggregate([0.5, float("nan")])
    with pytest.raises(EvaluationError, match="non-empty"):
        aggregate([])


def test_few_seeds_use_the_paired_t_test():
    result = paired_comparison({0: 0.6, 1: 0.7, 2: 0.8}, {0: 0.5, 1: 0.5, 2: 0.5})
    assert result.test == "t-test"
    assert result.signs == {0: 1, 1: 1, 2: 1}
    assert result.mean_diff == pytest.approx(0.2)
    # diffs 0.1, 0.2, 0.3: t = 0.2 / (0.1 / sqrt 3); with 2 df, p = 1 - t / sqrt(2 + t^2)
    t = 0.2 / (0.1 / math.sqrt(3))
    assert result.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert not result.significant


def test_six_or_more_seeds_use_wilcoxon():
    a = {s: 0.5 + 0.1 * s for s in range(6)}
    all_ahead = paired_comparison(a, {s: 0.4 for s in range(6)})
    assert all_ahead.test == "wilcoxon"
    assert all_ahead.p_value == pytest.approx(2 / 64)  # exact: only the all-positive sign set
    assert all_ahead.significant and all_ahead.wins == 6
    one_behind = paired_comparison({**a, 0: 0.35}, {s: 0.4 for s in range(6)})
    assert one_behind.p_value == pytest.approx(4 / 64)  # rank sums 0 and 1, both tails
    assert not one_behind.significant and one_behind.losses == 1


def test_equal_scores_are_no_lead():
    same = {0: 0.5, 1: 0.6, 2: 0.7}
    result = paired_comparison(same, same)
    assert result.p_value == 1.0 and not result.significant
    assert result.signs == {0: 0, 1: 0, 2: 0}


def test_identical_nonzero_differences_take_the_t_test_limit():
    result = paired_comparison({0: 0.75, 1: 0.5}, {0: 0.5, 1: 0.25})
    assert result.p_value == 0.0 and result.significant


def test_only_common_seeds_are_compared():
    result = paired_comparison({0: 0.9, 1: 0.8, 2: 0.7}, {1: 0.5, 2: 0.5, 3: 0.5})
    assert result.seeds == [1, 2]
    assert result.unpaired == [0, 3]
    lone = paired_comparison({0: 0.9}, {0: 0.1})
    assert lone.test == "none" and math.isnan(lone.p_value) and not lone.significant
