"""The comparison JSON: one object per case, rankings, best per dataset."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

SCHEMA_VERSION = 1
# Fields of a case result that go into the comparison (samples go to their own logs).
CASE_FIELDS = (
    "case_id", "model", "preset", "dataset", "task_type", "categories", "status", "n_items", "n_samples",
    "primary_metric", "score", "metrics", "performance", "scorer", "prompt_template_hash", "sampling",
    "engine", "error", "wall_s", "sample_log",
)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def model_label(case: dict[str, Any], multi_preset: bool) -> str:
    return f"{case['model']}@{case['preset']}" if multi_preset else case["model"]


def rankings(cases: list[dict[str, Any]], multi_preset: bool) -> list[dict[str, Any]]:
    """Models ranked by their mean primary score over the datasets they completed."""
    scores: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for c in cases:
        label = model_label(c, multi_preset)
        if c["status"] == "error":
            errors[label] += 1
        elif c.get("score") is not None:
            scores[label].append(float(c["score"]))
    rows = [
        {"model": m, "mean_score": sum(v) / len(v), "n_datasets": len(v), "n_errors": errors.get(m, 0)}
        for m, v in scores.items() if v
    ]
    rows.sort(key=lambda r: (-r["mean_score"], r["model"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def best_per_dataset(cases: list[dict[str, Any]], multi_preset: bool) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for c in cases:
        if c["status"] == "error" or c.get("score") is None:
            continue
        cur = best.get(c["dataset"])
        if cur is None or c["score"] > cur["score"]:
            best[c["dataset"]] = {"model": model_label(c, multi_preset), "score": c["score"], "metric": c["primary_metric"]}
    return best


def build_comparison(
    results: list[dict[str, Any]],
    *,
    run_id: str,
    started_at: float,
    finished_at: float,
    label: str,
    presets: list[str],
    engine: str,
    options: dict[str, Any],
    manifest: dict[str, Any],
) -> dict[str, Any]:
    multi = len(presets) > 1
    cases = [{k: r.get(k) for k in CASE_FIELDS if k in r} for r in results]
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "label": label,
        "preset": "+".join(presets),
        "presets": presets,
        "engine": engine,
        "options": options,
        "manifest": manifest,
        "cases": cases,
        "rankings": rankings(cases, multi),
        "best_per_dataset": best_per_dataset(cases, multi),
    }
