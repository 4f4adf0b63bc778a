"""Metrics: small functions a scorer declares next to itself, as inspect_ai's
``@scorer(metrics=[...])`` does.

A ``Metric`` turns a case's verdicts (``rows[i]``: the samples of item i)
into named numbers; the one named by the scorer's ``primary_metric`` also
knows each item's share (``per_item``), which is what paired comparisons
and the gate use.  Samples whose verdict says nothing about the model
(``results.NOT_JUDGED``: sandbox_error) are left out of every
denominator and counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .items import Item, Verdict
from .results import NOT_JUDGED
from .scoring import passk

Rows = Sequence[Sequence[Verdict]]
# (items, rows, ks) -> {name: value}
Compute = Callable[[Sequence[Item], Rows, tuple[int, ...]], dict[str, float]]
# (the item's judged samples, ks) -> its contribution to the metric
PerItem = Callable[[Sequence[Verdict], tuple[int, ...]], float]


@dataclass(frozen=True)
class Metric:
    names: tuple[str, ...]  # what it reports ("pass@*" for one name per reportable k)
    compute: Compute
    per_item: PerItem | None = None

    def reports(self, name: str) -> bool:
        return name in self.names or any(n.endswith("*") and name.startswith(n[:-1]) for n in self.names)


def judged(rows: Rows) -> list[list[Verdict]]:
    """Each item's samples without those the harness could not judge."""
    return [[v for v in row if v.verdict not in NOT_JUDGED] for row in rows]


def _flat(rows: Rows) -> list[Verdict]:
    return [v for row in judged(rows) for v in row]


def _k_of(name: str) -> int:
    return int(name.split("@", 1)[1])


def pass_at_k() -> Metric:
    """The unbiased pass@k estimator, for k = 1 and each --pass-k every item has samples for."""

    def compute(items: Sequence[Item], rows: Rows, ks: tuple[int, ...]) -> dict[str, float]:
        counts = [(len(r), sum(v.passed for v in r)) for r in judged(rows) if r]
        return {f"pass@{k}": passk.mean_pass_at_k(counts, k) if counts else 0.0
                for k in passk.reportable_ks((n for n, _ in counts), ks) or [1]}

    return Metric(("pass@*",), compute, per_item=None)


def pass_at_k_of_item(row: Sequence[Verdict], k: int) -> float:
    return passk.pass_at_k(len(row), sum(v.passed for v in row), k)


def mean(key: str, name: str | None = None) -> Metric:
    """The mean of a per-sample score over every judged sample."""
    label = name or key

    def compute(items: Sequence[Item], rows: Rows, ks: tuple[int, ...]) -> dict[str, float]:
        flat = _flat(rows)
        return {label: sum(v.scores.get(key, 0.0) for v in flat) / len(flat) if flat else 0.0}

    def per_item(row: Sequence[Verdict], ks: tuple[int, ...]) -> float:
        return sum(v.scores.get(key, 0.0) for v in row) / len(row)

    return Metric((label,), compute, per_item)


def accuracy(name: str = "accuracy") -> Metric:
    """The share of judged samples that passed."""

    def compute(items: Sequence[Item], rows: Rows, ks: tuple[int, ...]) -> dict[str, float]:
        flat = _flat(rows)
        return {name: sum(v.passed for v in flat) / len(flat) if flat else 0.0}

    def per_item(row: Sequence[Verdict], ks: tuple[int, ...]) -> float:
        return sum(v.passed for v in row) / len(row)

    return Metric((name,), compute, per_item)


def ratio(numerator: str, denominator: str, name: str) -> Metric:
    """sum(numerator) / sum(denominator) over judged samples (IFEval's instruction level)."""

    def compute(items: Sequence[Item], rows: Rows, ks: tuple[int, ...]) -> dict[str, float]:
        flat = _flat(rows)
        total = sum(v.scores.get(denominator, 0.0) for v in flat)
        return {name: sum(v.scores.get(numerator, 0.0) for v in flat) / total if total else 0.0}

    return Metric((name,), compute)


def count(kinds: Sequence[str], name: str) -> Metric:
    """How many samples got one of these verdict kinds (judged or not)."""

    def compute(items: Sequence[Item], rows: Rows, ks: tuple[int, ...]) -> dict[str, float]:
        return {name: float(sum(v.verdict in kinds for row in rows for v in row))}

    return Metric((name,), compute)


def accuracy_by(field: str, default: str, prefix: str = "accuracy_") -> Metric:
    """Accuracy per value of an item field, when a dataset mixes several (BFCL categories)."""

    def compute(items: Sequence[Item], rows: Rows, ks: tuple[int, ...]) -> dict[str, float]:
        groups: dict[str, list[bool]] = {}
        for item, row in zip(items, judged(rows)):
            groups.setdefault(str(item.data.get(field, default)), []).extend(v.passed for v in row)
        if len(groups) < 2:
            return {}
        return {f"{prefix}{g}": sum(p) / len(p) for g, p in sorted(groups.items()) if p}

    return Metric((f"{prefix}*",), compute)


def compute_all(metrics: Sequence[Metric], items: Sequence[Item], rows: Rows, ks: tuple[int, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in metrics:
        out.update(m.compute(items, rows, ks))
    return out


def item_scores(metrics: Sequence[Metric], primary: str, items: Sequence[Item], rows: Rows,
                ks: tuple[int, ...]) -> dict[str, float]:
    """Each item's contribution to the primary metric; items with no judged sample are left out."""
    metric = next((m for m in metrics if m.reports(primary)), None)
    out: dict[str, float] = {}
    for item, row in zip(items, judged(rows)):
        if not row:
            continue
        if primary.startswith("pass@"):
            k = _k_of(primary)
            out[item.id] = pass_at_k_of_item(row, k) if k <= len(row) else sum(v.passed for v in row) / len(row)
        elif metric is not None and metric.per_item is not None:
            out[item.id] = metric.per_item(row, ks)
        else:
            out[item.id] = sum(v.passed for v in row) / len(row)
    return out


__all__ = ["Metric", "judged", "pass_at_k", "mean", "accuracy", "ratio", "count", "accuracy_by", "compute_all",
           "item_scores", "pass_at_k_of_item"]
