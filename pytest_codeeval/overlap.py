"""Which engines generated at the same time on the same devices.

Two engines that generate at once on the same CPU or GPU slow each other
down: measured here, a compiled preset still compiling on one xdist worker
ran at 1.8 tokens/s while the other worker's engine ran at 49.6 on the same
two cores, against 120 alone.  Each case keeps the windows of the engine
calls that made its samples in this run (``performance.windows``), with the
host and devices; the controller, which sees every case, marks the ones
whose calls overlapped with another engine's on a shared device
(``performance.overlapped_with``).  Engines on disjoint GPUs (placement.py)
do not overlap; engines without GPUs share the host's CPU.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from .results import CaseResult

CPU = "cpu"
TIMING_ADVICE = ("For comparable figures run the models one after another (no xdist), or give each xdist worker its "
                 "own GPUs (--gpus=...): engines on disjoint devices are not flagged.")


def engine_of(case: CaseResult) -> str:
    return f"{case.model}@{case.preset}"


def _devices(case: CaseResult) -> set[str]:
    return {str(d) for d in case.performance.devices or ()} or {CPU}


def _intersect(a: Sequence[list[float]], b: Sequence[list[float]]) -> bool:
    return any(x0 < y1 and y0 < x1 for x0, x1 in a for y0, y1 in b)


def mark_overlaps(results: Sequence[CaseResult]) -> None:
    """Set ``performance.overlapped_with`` on every case timed in this run
    (an empty list: it ran alone on its devices)."""
    windows: dict[str, list[list[float]]] = defaultdict(list)
    where: dict[str, tuple[str | None, set[str]]] = {}
    for case in results:
        p = case.performance
        if p.windows:
            key = engine_of(case)
            windows[key] += [w for w in p.windows if w not in windows[key]]
            host, devices = where.get(key, (p.host, set()))
            where[key] = (host, devices | _devices(case))
    for case in results:
        p = case.performance
        if not p.windows:
            continue
        key = engine_of(case)
        others = [o for o in windows if o != key and where[o][0] == p.host and where[o][1] & _devices(case)]
        p.overlapped_with = sorted(o for o in others if _intersect(p.windows, windows[o]))


__all__ = ["mark_overlaps", "engine_of", "TIMING_ADVICE"]
