"""The comparison JSON: one object per case, rankings with confidence
intervals, best per dataset, a paired comparison of the top two models,
strengths and weaknesses per task type, a recommendation drawn from the
numbers and the gating outcome.  Its shape is documented and versioned by
schema/comparison.schema.json (validate_comparison checks it)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import stats
from ..results import case_fields

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schema" / "comparison.schema.json"
# Fields of a case result that go into the comparison (samples go to their own logs).
CASE_FIELDS = case_fields()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def model_label(case: dict[str, Any], multi_preset: bool) -> str:
    return f"{case['model']}@{case['preset']}" if multi_preset else case["model"]


def rankings(
    cases: list[dict[str, Any]], multi_preset: bool, per_item: dict[str, dict[str, float]] | None = None
) -> list[dict[str, Any]]:
    """Models ranked by their mean primary score over the datasets they
    completed, with a 95% CI (bootstrap within each dataset's items)."""
    per_item = per_item or {}
    scores: dict[str, list[float]] = defaultdict(list)
    strata: dict[str, list[list[float]]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for c in cases:
        label = model_label(c, multi_preset)
        if c["status"] == "error":
            errors[label] += 1
        elif c.get("score") is not None:
            scores[label].append(float(c["score"]))
            strata[label].append(list(per_item.get(c["case_id"], {}).values()))
    rows = []
    for m, v in scores.items():
        if not v:
            continue
        row: dict[str, Any] = {"model": m, "mean_score": sum(v) / len(v), "n_datasets": len(v),
                               "n_errors": errors.get(m, 0), "ci_low": None, "ci_high": None}
        if all(strata[m]):
            ci = stats.bootstrap_mean(strata[m]) if len(v) > 1 else stats.score_interval(strata[m][0])
            row.update(ci_low=ci.low, ci_high=ci.high, ci_method=ci.method)
        rows.append(row)
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
    per_item = {r["case_id"]: r.get("item_scores") or {} for r in results if r.get("status") != "error"}
    for r in results:
        if per_item.get(r["case_id"]):
            r["ci"] = stats.score_interval(list(per_item[r["case_id"]].values())).to_dict()
    cases = [{k: r.get(k) for k in CASE_FIELDS if k in r} for r in results]
    ranking = rankings(cases, multi, per_item)
    paired = paired_comparison(cases, ranking, per_item, multi)
    by_type = strengths(cases, multi)
    gating_regressions = [g for c in cases for g in (c.get("gating") or [])]
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
        "rankings": ranking,
        "best_per_dataset": best_per_dataset(cases, multi),
        "paired_comparison": paired,
        "strengths": by_type,
        "recommendation": recommendation(cases, ranking, paired, by_type, multi),
        "presets_compared": compare_presets(cases) if multi else {},
        "gating": {"baseline": options.get("baseline"), "checked": any(c.get("gating") is not None for c in cases),
                   "regressions": gating_regressions},
    }


def compare_presets(cases: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model, per preset: throughput, load time, peak memory and mean score
    over the datasets both ran, which is how a user picks a preset for a GPU."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for c in cases:
        if c["status"] == "error":
            continue
        perf = c.get("performance") or {}
        row = out.setdefault(c["model"], {}).setdefault(
            c["preset"], {"tokens": 0, "generation_s": 0.0, "load_s": None, "peak_memory_bytes": 0, "scores": []})
        row["tokens"] += perf.get("completion_tokens") or 0
        row["generation_s"] += perf.get("generation_s") or 0.0
        row["load_s"] = perf.get("load_s", row["load_s"])
        row["peak_memory_bytes"] = max(row["peak_memory_bytes"], perf.get("peak_memory_bytes") or 0)
        if c.get("score") is not None:
            row["scores"].append(float(c["score"]))
    for presets in out.values():
        for row in presets.values():
            gen_s = row.pop("generation_s")
            scores = row.pop("scores")
            row["tokens_per_s"] = round(row["tokens"] / gen_s, 2) if gen_s > 0 else None
            row["mean_score"] = sum(scores) / len(scores) if scores else None
    return out


# -- paired comparison, strengths, recommendation ------------------------------


def paired_comparison(
    cases: list[dict[str, Any]], ranking: list[dict[str, Any]], per_item: dict[str, dict[str, float]], multi: bool
) -> dict[str, Any] | None:
    """The top two models on the items they both answered: the paired
    bootstrap of the difference (all shared datasets) and the exact McNemar
    test per dataset where scores are pass/fail."""
    if len(ranking) < 2:
        return None
    a, b = ranking[0]["model"], ranking[1]["model"]
    by = {(model_label(c, multi), c["dataset"]): c for c in cases if c["status"] != "error" and c["case_id"] in per_item}
    datasets = [d for d in dict.fromkeys(c["dataset"] for c in cases) if (a, d) in by and (b, d) in by]
    strata_a: list[list[float]] = []
    strata_b: list[list[float]] = []
    per_dataset: dict[str, Any] = {}
    for d in datasets:
        sa, sb = per_item[by[(a, d)]["case_id"]], per_item[by[(b, d)]["case_id"]]
        ids = [i for i in sa if i in sb]
        if not ids:
            continue
        xa, xb = [sa[i] for i in ids], [sb[i] for i in ids]
        strata_a.append(xa)
        strata_b.append(xb)
        entry: dict[str, Any] = {"n_items": len(ids), "score_a": sum(xa) / len(ids), "score_b": sum(xb) / len(ids)}
        if stats.is_binary(xa) and stats.is_binary(xb):
            entry["mcnemar"] = stats.mcnemar_exact([x == 1.0 for x in xa], [x == 1.0 for x in xb]).to_dict()
        per_dataset[d] = entry
    if not strata_a:
        return None
    diff = stats.paired_bootstrap(strata_a, strata_b)
    return {"model_a": a, "model_b": b, "datasets": per_dataset, **diff.to_dict()}


def strengths(cases: list[dict[str, Any]], multi: bool) -> dict[str, dict[str, Any]]:
    """Per model: mean score per task type, its rank there among the models,
    and the task types that are its strengths (best of several models, or 5+
    points above its own mean) and weaknesses (worst of several, or 5+ below)."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cases:
        if c["status"] != "error" and c.get("score") is not None:
            scores[model_label(c, multi)][c.get("task_type") or "unknown"].append(float(c["score"]))
    means = {m: {t: sum(v) / len(v) for t, v in ts.items()} for m, ts in scores.items()}
    out: dict[str, dict[str, Any]] = {}
    for m, ts in means.items():
        own = sum(ts.values()) / len(ts)
        by_type: dict[str, Any] = {}
        good: list[str] = []
        bad: list[str] = []
        for t, v in sorted(ts.items()):
            rivals = sorted((means[o][t] for o in means if t in means[o]), reverse=True)
            rank = 1 + sum(1 for r in rivals if r > v)
            by_type[t] = {"score": v, "rank": rank, "of": len(rivals)}
            best = len(rivals) > 1 and rank == 1
            worst = len(rivals) > 1 and rank == len(rivals) and v < rivals[0]
            if best or (len(ts) > 1 and v >= own + 0.05):
                good.append(t)
            elif worst or (len(ts) > 1 and v <= own - 0.05):
                bad.append(t)
        out[m] = {"by_task_type": by_type, "strengths": good, "weaknesses": bad}
    return out


def _speed(cases: list[dict[str, Any]], multi: bool) -> dict[str, float]:
    toks: dict[str, float] = defaultdict(float)
    secs: dict[str, float] = defaultdict(float)
    for c in cases:
        p = c.get("performance") or {}
        if p.get("completion_tokens") and p.get("generation_s"):
            toks[model_label(c, multi)] += p["completion_tokens"]
            secs[model_label(c, multi)] += p["generation_s"]
    return {m: toks[m] / secs[m] for m in toks if secs[m] > 0}


def recommendation(
    cases: list[dict[str, Any]], ranking: list[dict[str, Any]], paired: dict[str, Any] | None,
    by_type: dict[str, dict[str, Any]], multi: bool,
) -> str:
    """A paragraph a person can act on, every claim taken from the numbers."""
    if not ranking:
        return "No case completed, so there is nothing to recommend: fix the errors listed below and rerun."
    top = ranking[0]
    ci = f" (95% CI {_p(top['ci_low'])}–{_p(top['ci_high'])})" if top.get("ci_low") is not None else ""
    speed = _speed(cases, multi)
    parts: list[str] = []
    if len(ranking) == 1:
        parts.append(f"Only one model was evaluated: {top['model']} scored {_p(top['mean_score'])} on average"
                     f"{ci} over {top['n_datasets']} dataset(s); compare it with another model or with a baseline "
                     "(--baseline) before choosing.")
    else:
        second = ranking[1]
        parts.append(f"{top['model']} ranks first with a mean score of {_p(top['mean_score'])}{ci} over "
                     f"{top['n_datasets']} dataset(s), ahead of {second['model']} ({_p(second['mean_score'])}).")
        if paired is not None:
            diff = f"{100 * paired['difference']:+.1f} points, 95% CI {100 * paired['low']:+.1f} to {100 * paired['high']:+.1f}"
            if paired["significant"]:
                parts.append(f"On the {paired['n_items']} items both answered the difference is significant "
                             f"({diff}, p = {paired['p_value']:.3g}): prefer {paired['model_a']}.")
            else:
                faster = max((paired["model_a"], paired["model_b"]), key=lambda m: speed.get(m, 0.0))
                parts.append(f"On the {paired['n_items']} items both answered the difference is not significant "
                             f"({diff}, p = {paired['p_value']:.3g}): the two are statistically tied, so "
                             f"the faster one, {faster}, is the better buy" +
                             (f" ({speed[faster]:.0f} tokens/s)." if faster in speed else "."))
    specialists = []
    task_types = sorted({t for m in by_type.values() for t in m["by_task_type"]})
    for t in task_types:
        best = max((m for m in by_type if t in by_type[m]["by_task_type"]),
                   key=lambda m: by_type[m]["by_task_type"][t]["score"])
        if best != top["model"] and len(by_type) > 1:
            specialists.append(f"{t}: {best} ({_p(by_type[best]['by_task_type'][t]['score'])})")
    if specialists:
        parts.append("Where one task type matters most, pick its leader instead: " + "; ".join(specialists) + ".")
    weak = by_type.get(top["model"], {}).get("weaknesses") or []
    if weak:
        parts.append(f"{top['model']} is weakest at {', '.join(weak)}.")
    if speed and len(speed) > 1:
        fastest = max(speed, key=lambda m: speed[m])
        parts.append(f"Fastest: {fastest} at {speed[fastest]:.0f} tokens/s.")
    errors = [c["case_id"] for c in cases if c["status"] == "error"]
    if errors:
        parts.append(f"{len(errors)} case(s) ended in an error and count for nothing here: {', '.join(errors[:5])}.")
    return " ".join(parts)


def _p(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


# -- schema -----------------------------------------------------------------------


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_comparison(data: dict[str, Any]) -> list[str]:
    """Problems of ``data`` against the shipped JSON Schema (empty: valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))]
