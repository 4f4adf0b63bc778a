"""Statistics for reports and gating: confidence intervals and paired tests.

- Wilson score interval for a proportion (binary per-item scores).
- Percentile bootstrap for means of fractional per-item scores (pass@k with
  n > 1, loose instruction accuracy), stratified by dataset for a model's
  mean over datasets.
- Paired comparison of two models on the same items: the exact McNemar
  test (binary scores on one dataset) and the paired bootstrap of the
  difference of means (any scores, several datasets).
- The gate's one-sided paired test ("is the run worse than its baseline?")
  and the smallest drop that test can flag on n items.

The bootstraps are vectorised with numpy (a report with many models calls
them often: 2000 resamples of 7 x 164 items took 0.68 s a call in pure
Python).  Each stratum draws its resample indices from one
``numpy.random.default_rng(seed)`` generator, in stratum order, so a seed
gives the same interval on every machine and run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
ALPHA = 0.05
# Resample indices are drawn in blocks of at most this many, so that 2000
# resamples of a 10,000-item dataset do not hold 20M indices at once.
_BLOCK = 4_000_000


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


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def stratified_mean(strata: Sequence[Sequence[float]]) -> float:
    """Mean of the strata's means (a model's mean over datasets)."""
    means = [_mean(s) for s in strata if s]
    return _mean(means)


def _resampled_means(rng: np.random.Generator, values: np.ndarray, n_boot: int) -> np.ndarray:
    """The means of ``n_boot`` resamples (with replacement) of ``values``."""
    n = len(values)
    rows = max(1, _BLOCK // n)
    out = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def _stratified_resamples(strata: Sequence[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` resampled means of strata means; each stratum is resampled on its own."""
    rng = np.random.default_rng(seed)
    total = np.zeros(n_boot)
    for s in strata:
        total += _resampled_means(rng, s, n_boot)
    return total / len(strata)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])  # linear, between closest ranks
    return float(low), float(high)


def bootstrap_mean(
    strata: Sequence[Sequence[float]], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Percentile bootstrap CI of the mean of strata means; each stratum
    (dataset) is resampled on its own, so each keeps its weight."""
    kept = [np.asarray(s, dtype=float) for s in strata if len(s)]
    estimate = stratified_mean([list(s) for s in strata if s])
    if not kept:
        return Interval(0.0, 0.0, 1.0, "bootstrap", level)
    low, high = _percentiles(_stratified_resamples(kept, n_boot, seed), level)
    return Interval(estimate, low, high, "bootstrap", level)


def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def score_interval(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> Interval:
    """CI of one case's score from its per-item scores: Wilson when every
    item is pass/fail, else the bootstrap."""
    if values and is_binary(values):
        return wilson(int(sum(values)), len(values))
    return bootstrap_mean([values], n_boot=n_boot, seed=seed)


def stratified_interval(strata: Sequence[Sequence[float]], n_boot: int = 2000, seed: int = 0) -> Interval:
    """CI of a model's mean over datasets (strata means): as score_interval
    for one dataset, else the stratified bootstrap, except when every item
    of every dataset has the same pass/fail score: the bootstrap then
    collapses to a point (0.0-0.0% for 18 failures), so the Wilson interval
    of the pooled items stands in."""
    kept = [list(s) for s in strata if s]
    if len(kept) == 1:
        return score_interval(kept[0], n_boot=n_boot, seed=seed)
    flat = [v for s in kept for v in s]
    if flat and is_binary(flat) and len(set(flat)) == 1:
        w = wilson(int(sum(flat)), len(flat))
        return Interval(stratified_mean(kept), w.low, w.high, "wilson")
    return bootstrap_mean(kept, n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class McNemar:
    only_a: int  # items A passed and B failed
    only_b: int  # items B passed and A failed
    p_value: float  # exact two-sided binomial test on the discordant pairs

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _binom_tail(n: int, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """Exact McNemar test: under H0 the discordant pairs split 50/50."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = only_a + only_b
    if n == 0:
        return McNemar(0, 0, 1.0)
    tail = _binom_tail(n, max(only_a, only_b))
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


def _paired_strata(strata_a: Sequence[Sequence[float]], strata_b: Sequence[Sequence[float]]) -> list[np.ndarray]:
    if len(strata_a) != len(strata_b):
        raise ValueError("paired samples must have the same number of strata")
    for a, b in zip(strata_a, strata_b):
        if len(a) != len(b):
            raise ValueError("paired strata must have the same length")
    return [np.asarray(a, dtype=float) - np.asarray(b, dtype=float) for a, b in zip(strata_a, strata_b) if len(a)]


def paired_bootstrap(
    strata_a: Sequence[Sequence[float]],
    strata_b: Sequence[Sequence[float]],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    """Paired bootstrap of mean(A) - mean(B): items are resampled together
    (the same resampled items for both models), within each stratum."""
    diffs_by_stratum = _paired_strata(strata_a, strata_b)
    n_items = sum(len(d) for d in diffs_by_stratum)
    if not diffs_by_stratum:
        return PairedDifference(0.0, 0.0, 0.0, 1.0, 0)
    observed = _mean([float(d.mean()) for d in diffs_by_stratum])
    diffs = _stratified_resamples(diffs_by_stratum, n_boot, seed)
    low, high = _percentiles(diffs, level)
    # Two-sided p: twice the share of resamples on the other side of zero.
    if observed == 0:
        p_value = 1.0
    else:
        other = int(np.count_nonzero(diffs <= 0 if observed > 0 else diffs >= 0))
        p_value = min(1.0, 2 * (other + 1) / (n_boot + 1))
    return PairedDifference(observed, low, high, p_value, n_items)


# -- the gate's test: is the run worse than its baseline? ------------------------


@dataclass(frozen=True)
class DropTest:
    """One-sided paired test of "the run scores lower than its baseline" on shared items."""

    drop: float  # mean(baseline) - mean(run) over the shared items (> 0: the run is worse)
    p_value: float  # one-sided
    n_items: int
    method: str  # "mcnemar_exact" | "paired_bootstrap"
    worse: int | None = None  # binary scores: items the baseline passed and the run failed
    better: int | None = None  # ... and the other way round

    @property
    def significant(self) -> bool:
        return self.p_value <= ALPHA and self.drop > 0

    def to_dict(self) -> dict[str, float | int | str | bool | None]:
        return {**asdict(self), "significant": self.significant}


def drop_test(baseline: Sequence[float], run: Sequence[float], n_boot: int = 2000, seed: int = 0) -> DropTest:
    """Exact one-sided McNemar when every item is pass/fail on both sides,
    else a one-sided paired bootstrap."""
    if len(baseline) != len(run):
        raise ValueError("paired samples must have the same length")
    n = len(run)
    if n == 0:
        return DropTest(0.0, 1.0, 0, "none")
    drop = _mean(baseline) - _mean(run)
    if is_binary(baseline) and is_binary(run):
        worse = sum(1 for b, r in zip(baseline, run) if b == 1.0 and r == 0.0)
        better = sum(1 for b, r in zip(baseline, run) if b == 0.0 and r == 1.0)
        p = _binom_tail(worse + better, worse) if worse + better else 1.0
        return DropTest(drop, p, n, "mcnemar_exact", worse, better)
    if drop <= 0:
        return DropTest(drop, 1.0, n, "paired_bootstrap")
    diffs = _stratified_resamples([np.asarray(baseline, dtype=float) - np.asarray(run, dtype=float)], n_boot, seed)
    p = (int(np.count_nonzero(diffs <= 0)) + 1) / (n_boot + 1)
    return DropTest(drop, min(1.0, p), n, "paired_bootstrap")


def min_flips(alpha: float = ALPHA) -> int:
    """The fewest items that must flip from pass to fail (and none back) for
    the exact one-sided McNemar test to reach ``alpha``: 5 at 5%."""
    return math.ceil(math.log2(1 / alpha))


def min_detectable_drop(n_items: int, alpha: float = ALPHA) -> float | None:
    """The smallest drop the gate's test can ever flag on ``n_items`` paired
    items (every discordant item against the run); None: no drop at all."""
    k = min_flips(alpha)
    return k / n_items if n_items >= k else None


def items_to_detect(drop: float, alpha: float = ALPHA) -> int:
    """How many shared items make a drop of ``drop`` detectable at best."""
    return math.ceil(min_flips(alpha) / drop) if drop > 0 else 0
