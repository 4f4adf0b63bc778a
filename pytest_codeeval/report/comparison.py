"""The comparison JSON: one object per case, the ranking (over the datasets
every model completed) with confidence intervals, best per dataset, a paired
comparison of the top two models, strengths and weaknesses per task type, a
recommendation drawn from the numbers, presets side by side, the samples the
harness could not judge, and the gating outcome.  Its shape is documented
and versioned by schema/comparison.schema.json (validate_comparison checks
it).  The ranking logic lives in ranking.py."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import defaults, stats
from ..overlap import TIMING_ADVICE
from ..results import NOT_JUDGED, UNVERIFIED, case_fields
from .fmt import timed_alone
from .ranking import (completed, dataset_order, model_label, paired, paired_comparison, ranking_basis, rankings,
                      recommendation, strengths, unranked)

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schema" / "comparison.schema.json"
# Fields of a case result that go into the comparison (samples go to their own logs).
CASE_FIELDS = case_fields()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


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
    basis = ranking_basis(cases, multi)
    paired = paired_comparison(cases, ranking, per_item, multi)
    by_type = strengths(cases, multi, basis or None)  # no common dataset: each over its own
    findings = [g for c in cases for g in (c.get("gating") or [])]
    return {
        "schema_version": SCHEMA_VERSION,
        "timing": timing_conditions(cases),
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
        "ranking_basis": basis,
        "unranked": unranked(cases, multi),
        "best_per_dataset": best_per_dataset(cases, multi),
        "paired_comparison": paired,
        "strengths": by_type,
        "recommendation": recommendation(cases, ranking, paired, by_type, per_item, multi),
        "presets_compared": compare_presets(cases) if multi else {},
        "preset_differences": preset_differences(cases, presets, per_item) if multi else {},
        "not_judged": not_judged_summary(cases),
        "gating": {"baseline": options.get("baseline"), "checked": any(c.get("gating") is not None for c in cases),
                   "regressions": [g for g in findings if g.get("regression", True)],
                   "notes": [g for g in findings if not g.get("regression", True)]},
    }


def best_per_dataset(cases: list[dict[str, Any]], multi_preset: bool) -> dict[str, dict[str, Any]]:
    """The best score per dataset; ``models`` lists every model that reached it
    (ties), ``n_models`` how many completed the dataset."""
    best: dict[str, dict[str, Any]] = {}
    for c in cases:
        if not completed(c):
            continue
        label = model_label(c, multi_preset)
        cur = best.get(c["dataset"])
        if cur is None or c["score"] > cur["score"]:
            best[c["dataset"]] = {"model": label, "models": [label], "score": c["score"], "metric": c["primary_metric"],
                                  "n_models": (cur or {}).get("n_models", 0) + 1}
        else:
            cur["n_models"] += 1
            if c["score"] == cur["score"]:
                cur["models"].append(label)
    return best


def not_judged_summary(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Cases with samples the harness could not judge (NOT_JUDGED kinds, kept
    out of n) or could not verify (``unverified``: never a pass, kept in n, so
    the score is a lower bound by that many): how many, of which kind, and a
    flag when they are many (at least defaults.NOT_JUDGED_FLAG_SHARE of the
    case's samples)."""
    rows = []
    for c in cases:
        verdicts = c.get("verdicts") or {}
        total = sum(verdicts.values())
        kinds = {k: n for k, n in verdicts.items() if (k in NOT_JUDGED or k == UNVERIFIED) and n}
        count = sum(kinds.values())
        if not count:
            continue
        share = count / total if total else 1.0
        rows.append({"case_id": c["case_id"], "not_judged": count - kinds.get(UNVERIFIED, 0),
                     "unverified": kinds.get(UNVERIFIED, 0), "samples": total, "share": share, "kinds": kinds,
                     "flagged": share >= defaults.NOT_JUDGED_FLAG_SHARE})
    return {"flag_share": defaults.NOT_JUDGED_FLAG_SHARE, "cases": rows}




def timing_conditions(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Which cases were timed while another engine loaded or generated on the same devices (overlap.py)."""
    overlapped = {c["case_id"]: (c.get("performance") or {}).get("overlapped_with") for c in cases}
    return {"overlapped": {cid: others for cid, others in overlapped.items() if others},
            "advice": TIMING_ADVICE}


def compare_presets(cases: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model, per preset: throughput, load time, peak memory and mean
    score over the datasets every preset of the model completed, which is
    how a user picks a preset for a GPU.  A figure no case measured is None."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    done: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for c in cases:
        if completed(c):
            done[c["model"]][c["preset"]][c["dataset"]] = c
    for c in cases:
        if c["status"] == "error":
            continue
        perf = c.get("performance") or {}
        row = out.setdefault(c["model"], {}).setdefault(c["preset"], {
            "tokens": 0, "_timed_tokens": 0, "_generation_s": 0.0, "load_s": None, "prepare_s": None,
            "peak_memory_bytes": None, "memory_kind": None, "overlapped_with": []})
        row["tokens"] += perf.get("completion_tokens") or 0
        if perf.get("overlapped_with"):
            # timed while another engine used the same devices: no comparable speed or memory
            row["overlapped_with"] = sorted(set(row["overlapped_with"]) | set(perf["overlapped_with"]))
            continue
        if timed_alone(perf):
            row["_timed_tokens"] += perf.get("completion_tokens") or 0
            row["_generation_s"] += perf["generation_s"]
        for key in ("load_s", "prepare_s"):
            if perf.get(key) is not None:
                row[key] = max(row[key] or 0.0, perf[key])
        if perf.get("peak_memory_bytes"):
            row["peak_memory_bytes"] = max(row["peak_memory_bytes"] or 0, perf["peak_memory_bytes"])
            row["memory_kind"] = perf.get("memory_kind")
    for model, by_preset in out.items():
        shared = [d for d in dict.fromkeys(c["dataset"] for c in cases)
                  if all(d in done[model].get(p, {}) for p in by_preset)]
        for preset, row in by_preset.items():
            gen_s, timed = row.pop("_generation_s"), row.pop("_timed_tokens")
            row["tokens_per_s"] = round(timed / gen_s, 2) if gen_s > 0 and timed else None
            scores = [float(done[model][preset][d]["score"]) for d in shared]
            row["mean_score"] = sum(scores) / len(scores) if scores else None
            row["datasets"] = shared
    return out


def preset_differences(cases: list[dict[str, Any]], presets: list[str],
                       per_item: dict[str, dict[str, float]]) -> dict[str, list[dict[str, Any]]]:
    """Per model: each preset's score against the first preset of --preset,
    on the same items (paired bootstrap over the datasets both completed).
    A preset can cost accuracy (memory_optimized's fp8 KV cache), not only speed."""
    out: dict[str, list[dict[str, Any]]] = {}
    models = list(dict.fromkeys(c["model"] for c in cases))
    for model in models:
        mine = [c for c in cases if c["model"] == model]
        ran = [p for p in presets if any(c["preset"] == p and completed(c) for c in mine)]
        if len(ran) < 2:
            continue
        ref = ran[0]
        rows = []
        for other in ran[1:]:
            datasets = [d for d in dataset_order(mine)
                        if any(c["dataset"] == d and c["preset"] == ref and completed(c) for c in mine)
                        and any(c["dataset"] == d and c["preset"] == other and completed(c) for c in mine)]
            pair = paired(mine, f"{model}@{other}", f"{model}@{ref}", datasets, per_item, multi=True)
            if pair is None:
                rows.append({"preset": other, "against": ref, "n_items": 0, "difference": None, "low": None,
                             "high": None, "p_value": None, "significant": False, "datasets": []})
                continue
            rows.append({"preset": other, "against": ref, "n_items": pair["n_items"],
                         "difference": pair["difference"], "low": pair["low"], "high": pair["high"],
                         "p_value": pair["p_value"], "significant": pair["significant"],
                         "datasets": list(pair["datasets"])})
        out[model] = rows
    return out


# -- schema -----------------------------------------------------------------------


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_comparison(data: dict[str, Any]) -> list[str]:
    """Problems of ``data`` against the shipped JSON Schema (empty: valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))]
