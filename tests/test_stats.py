"""The statistics against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from pytest_codeeval import stats


def test_wilson_matches_the_closed_form_by_hand() -> None:
    # 8/10, z = 1.96: centre = (0.8 + 0.19208) / 1.38416 = 0.71682,
    # half = 1.96 * sqrt(0.016 + 0.0009604) / 1.38416 = 0.18441.
    ci = stats.wilson(8, 10, z=1.96)
    assert ci.estimate == 0.8
    assert ci.low == pytest.approx(0.4902, abs=1e-4)
    assert ci.high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_at_the_edges_stays_inside_zero_one() -> None:
    all_pass = stats.wilson(5, 5)
    assert all_pass.high == 1.0 and all_pass.low == pytest.approx(0.5655, abs=1e-4)  # 1/(1+z²/5)
    none = stats.wilson(0, 5)
    assert none.low == 0.0 and none.high == pytest.approx(1 - 0.5655, abs=1e-4)
    with pytest.raises(ValueError):
        stats.wilson(6, 5)


def test_mcnemar_exact_by_hand() -> None:
    # 5 discordant pairs all favouring A: p = 2 * (1/2)^5 = 0.0625.
    r = stats.mcnemar_exact([True] * 5 + [False], [False] * 6)
    assert (r.only_a, r.only_b) == (5, 0) and r.p_value == pytest.approx(0.0625)
    # 3 vs 1 discordant: p = 2 * (C(4,0) + C(4,1)) / 16 = 0.625.
    r = stats.mcnemar_exact([1, 1, 1, 0, 1], [0, 0, 0, 1, 1])
    assert (r.only_a, r.only_b) == (3, 1) and r.p_value == pytest.approx(0.625)
    assert stats.mcnemar_exact([1, 0], [1, 0]).p_value == 1.0


def test_bootstrap_of_a_constant_is_the_constant() -> None:
    ci = stats.bootstrap_mean([[0.5] * 20])
    assert (ci.estimate, ci.low, ci.high) == (0.5, 0.5, 0.5)


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    values = [i / 19 for i in range(20)]
    a, b = stats.bootstrap_mean([values], seed=3), stats.bootstrap_mean([values], seed=3)
    assert a == b
    assert a.low < 0.5 < a.high
    # Standard error of the mean of 0..1 uniform grid, n = 20: ~0.068; the 95% CI spans ~±0.13.
    assert 0.2 < a.high - a.low < 0.34


def test_stratified_mean_weights_each_dataset_equally() -> None:
    assert stats.stratified_mean([[1.0, 1.0, 1.0, 1.0], [0.0]]) == 0.5


def test_score_interval_picks_wilson_for_pass_fail_and_bootstrap_otherwise() -> None:
    assert stats.score_interval([1.0, 0.0, 1.0]).method == "wilson"
    assert stats.score_interval([1.0, 0.5, 1.0]).method == "bootstrap"


def test_paired_bootstrap_sees_a_clear_difference_and_not_noise() -> None:
    a = [[1.0] * 30 + [0.0] * 10]
    b = [[0.0] * 30 + [0.0] * 10]
    d = stats.paired_bootstrap(a, b)
    assert d.difference == pytest.approx(0.75)
    assert d.significant and d.low > 0.5 and d.p_value < 0.01
    same = stats.paired_bootstrap([[1.0, 0.0] * 10], [[1.0, 0.0] * 10])
    assert same.difference == 0.0 and not same.significant and same.p_value == 1.0


def test_paired_bootstrap_needs_pairs() -> None:
    with pytest.raises(ValueError):
        stats.paired_bootstrap([[1.0, 0.0]], [[1.0]])


def test_unbiased_pass_at_k() -> None:
    from pytest_codeeval.scoring.passk import pass_at_k  # the one the reports use too

    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 1, 2) == pytest.approx(1 - math.comb(4, 2) / math.comb(5, 2))  # 0.4
    assert pass_at_k(4, 3, 2) == 1.0
