"""How long the report's bootstraps take: the numpy version in stats.py
against the pure-Python resampling it replaced (kept here as the reference),
on a model's 7 datasets x 164 items, 2000 resamples, as a report calls them
once per model (ranking CI) and once per pair (paired comparison).

    python benchmarks/bench_stats.py [--rounds 5]

Prints the median seconds per call of each and their ratio, with the
machine's load average (figures taken while others work are noisy: compare
the ratio, which comes from the same rounds).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Callable

from pytest_codeeval import stats


def python_bootstrap_mean(strata: list[list[float]], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    out = []
    for _ in range(n_boot):
        out.append(sum(sum(s[rng.randrange(len(s))] for _ in range(len(s))) / len(s) for s in strata) / len(strata))
    out.sort()
    return out[int(0.025 * n_boot)], out[int(0.975 * n_boot)]


def python_paired_bootstrap(a: list[list[float]], b: list[list[float]], n_boot: int = 2000,
                            seed: int = 0) -> tuple[float, float]:
    pairs = [[x - y for x, y in zip(sa, sb)] for sa, sb in zip(a, b)]
    return python_bootstrap_mean(pairs, n_boot, seed)


def timed(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    a = [[float(rng.random() < 0.6) for _ in range(164)] for _ in range(7)]
    b = [[float(rng.random() < 0.5) for _ in range(164)] for _ in range(7)]
    stats.bootstrap_mean(a)  # numpy's first call pays its set-up
    print(f"load average before: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores; 7 x 164 items, 2000 resamples, "
          f"median of {args.rounds} rounds")
    for name, py, vec in (
        ("bootstrap_mean", lambda: python_bootstrap_mean(a), lambda: stats.bootstrap_mean(a)),
        ("paired_bootstrap", lambda: python_paired_bootstrap(a, b), lambda: stats.paired_bootstrap(a, b)),
    ):
        t_py, t_np = timed(py, args.rounds), timed(vec, args.rounds)
        print(f"{name:17s} pure Python {t_py:.3f} s   numpy {t_np:.4f} s   {t_py / t_np:.0f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
