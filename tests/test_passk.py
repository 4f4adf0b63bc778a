"""pass@k against values computed by hand (and against the closed form)."""

from __future__ import annotations

from math import comb

import pytest

from pytest_codeeval.scoring.passk import mean_pass_at_k, pass_at_k, reportable_ks


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 0.4),  # c/n
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (5, 2, 4, 1.0),  # n - c < k: some draw must hold a correct one
        (10, 0, 5, 0.0),
        (10, 10, 1, 1.0),
        (10, 1, 10, 1.0),
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (20, 5, 10, 1 - 3003 / 184756),  # C(15,10) / C(20,10)
    ],
)
def test_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_matches_closed_form_on_a_grid() -> None:
    for n in range(1, 16):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12), (n, c, k)


def test_large_n_does_not_overflow() -> None:
    assert pass_at_k(200, 37, 100) == pytest.approx(1 - comb(163, 100) / comb(200, 100), rel=1e-9)


def test_mean_over_problems() -> None:
    assert mean_pass_at_k([(5, 2), (5, 0), (5, 5)], 1) == pytest.approx((0.4 + 0.0 + 1.0) / 3)
    assert mean_pass_at_k([], 1) == 0.0


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_reportable_ks_drops_k_above_n() -> None:
    assert reportable_ks([10, 10, 12], (1, 5, 10, 100)) == [1, 5, 10]
    assert reportable_ks([3], (10,)) == [1]
    assert reportable_ks([], (1,)) == []
