"""Statistics for reports and gating: confidence intervals and paired tests.

- Wilson score interval for a proportion (binary per-item scores).
- Percentile bootstrap for means of fractional per-item scores (pass@k with
  n > 1, loose instruction accuracy), stratified by dataset for a model's
  mean over datasets.
- Paired comparison of two models on the same items: the exact McNemar
  test (binary scores on one dataset) and the paired bootstrap of the
  difference of means (any scores, several datasets).

Everything is pure Python with a seeded RNG, so reports are reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Sequence

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    method: str  # "wilson" | "bootstrap"
    level: float = 0.95

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval (Wilson 1927) for successes / n."""
    if n <= 0:
        return Interval(0.0, 0.0, 1.0, "wilson")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..n, got {successes}/{n}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), "wilson")


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def stratified_mean(strata: Sequence[Sequence[float]]) -> float:
    """Mean of the strata's means (a model's mean over datasets)."""
    means = [_mean(s) for s in strata if s]
    return _mean(means)


def bootstrap_mean(
    strata: Sequence[Sequence[float]], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Percentile bootstrap CI of the mean of strata means; each stratum
    (dataset) is resampled on its own, so each keeps its weight."""
    strata = [list(s) for s in strata if s]
    estimate = stratified_mean(strata)
    if not strata:
        return Interval(0.0, 0.0, 1.0, "bootstrap", level)
    rng = random.Random(seed)
    stats: list[float] = []
    for _ in range(n_boot):
        means = []
        for s in strata:
            n = len(s)
            means.append(sum(s[rng.randrange(n)] for _ in range(n)) / n)
        stats.append(sum(means) / len(means))
    stats.sort()
    alpha = (1 - level) / 2
    return Interval(estimate, _percentile(stats, alpha), _percentile(stats, 1 - alpha), "bootstrap", level)


def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def score_interval(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> Interval:
    """CI of one case's score from its per-item scores: Wilson when every
    item is pass/fail, else the bootstrap."""
    if values and is_binary(values):
        return wilson(int(sum(values)), len(values))
    return bootstrap_mean([values], n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class McNemar:
    only_a: int  # items A passed and B failed
    only_b: int  # items B passed and A failed
    p_value: float  # exact two-sided binomial test on the discordant pairs

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """Exact McNemar test: under H0 the discordant pairs split 50/50."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = only_a + only_b
    if n == 0:
        return McNemar(0, 0, 1.0)
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return McNemar(only_a, only_b, min(1.0, 2 * tail))


@dataclass(frozen=True)
class PairedDifference:
    difference: float  # mean(A) - mean(B), over strata means
    low: float
    high: float
    p_value: float  # two-sided bootstrap p-value of "no difference"
    n_items: int
    method: str = "paired_bootstrap"
    level: float = 0.95

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float | str | bool]:
        return {**asdict(self), "significant": self.significant}


def paired_bootstrap(
    strata_a: Sequence[Sequence[float]],
    strata_b: Sequence[Sequence[float]],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    """Paired bootstrap of mean(A) - mean(B): items are resampled together
    (the same resampled items for both models), within each stratum."""
    pairs = [list(zip(a, b)) for a, b in zip(strata_a, strata_b)]
    for (a, b) in zip(strata_a, strata_b):
        if len(a) != len(b):
            raise ValueError("paired strata must have the same length")
    pairs = [p for p in pairs if p]
    n_items = sum(len(p) for p in pairs)
    if not pairs:
        return PairedDifference(0.0, 0.0, 0.0, 1.0, 0)
    observed = _mean([_mean([x - y for x, y in p]) for p in pairs])
    rng = random.Random(seed)
    diffs: list[float] = []
    for _ in range(n_boot):
        means = []
        for p in pairs:
            n = len(p)
            total = 0.0
            for _ in range(n):
                x, y = p[rng.randrange(n)]
                total += x - y
            means.append(total / n)
        diffs.append(sum(means) / len(means))
    diffs.sort()
    alpha = (1 - level) / 2
    # Two-sided p: twice the share of resamples on the other side of zero.
    if observed == 0:
        p_value = 1.0
    else:
        other = sum(1 for d in diffs if (d <= 0 if observed > 0 else d >= 0))
        p_value = min(1.0, 2 * (other + 1) / (n_boot + 1))
    return PairedDifference(observed, _percentile(diffs, alpha), _percentile(diffs, 1 - alpha), p_value, n_items)
