"""Ranking, paired comparison, strengths and the recommendation: every claim
compares models on the same work.

- The ranking averages each model over the datasets *every* ranked model
  completed (its basis); a model that errored on the hard dataset is not
  ranked on the easy ones alone.  Each row says which datasets it completed
  and which it lacks (coverage).
- The paired comparison of the top two runs on the same basis, item by item.
- The recommendation follows the sign and the significance of that paired
  comparison: a significant difference names the better model (whatever
  the ranking's order), a non-significant one says the two are tied, and
  speed breaks a tie only when both speeds were measured.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .. import stats
from .fmt import p_is, pct, points, timed_alone


def model_label(case: dict[str, Any], multi_preset: bool) -> str:
    return f"{case['model']}@{case['preset']}" if multi_preset else case["model"]


def completed(case: dict[str, Any]) -> bool:
    return case.get("status") != "error" and case.get("score") is not None


def dataset_order(cases: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(c["dataset"] for c in cases))


def by_model(cases: list[dict[str, Any]], multi: bool) -> dict[str, dict[str, dict[str, Any]]]:
    """label -> dataset -> completed case."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for c in cases:
        if completed(c):
            out.setdefault(model_label(c, multi), {})[c["dataset"]] = c
    return out


def ranking_basis(cases: list[dict[str, Any]], multi: bool) -> list[str]:
    """The datasets every model with a completed case completed, in plan order."""
    done = by_model(cases, multi)
    if not done:
        return []
    return [d for d in dataset_order(cases) if all(d in ds for ds in done.values())]


def rankings(cases: list[dict[str, Any]], multi: bool, per_item: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Models ranked by their mean primary score over the ranking basis,
    with a 95% CI (bootstrap within each dataset's items; Wilson for one
    pass/fail dataset).  Equal means share a rank.  Without a basis (no
    dataset all models completed) nobody is ranked: mean_score and rank are null."""
    done = by_model(cases, multi)
    basis = ranking_basis(cases, multi)
    planned: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in cases:
        planned[model_label(c, multi)].append(c)
    union = [d for d in dataset_order(cases) if any(d in ds for ds in done.values())]
    rows = []
    for m, ds in done.items():
        scores = [float(ds[d]["score"]) for d in basis]
        own = [float(c["score"]) for c in ds.values()]
        row: dict[str, Any] = {
            "model": m, "rank": None, "mean_score": sum(scores) / len(scores) if scores else None,
            "n_datasets": len(basis), "datasets": list(basis),
            "completed": len(ds), "planned": len(planned[m]),
            "missing": [{"dataset": d, "why": _why_missing(planned[m], d)} for d in union if d not in ds],
            "mean_own": sum(own) / len(own),
            "n_errors": sum(c["status"] == "error" for c in planned[m]),
            "ci_low": None, "ci_high": None,
        }
        strata = [list(per_item.get(ds[d]["case_id"], {}).values()) for d in basis]
        if strata and all(strata):
            ci = stats.stratified_interval(strata)
            row.update(ci_low=ci.low, ci_high=ci.high, ci_method=ci.method)
        rows.append(row)
    if basis:
        rows.sort(key=lambda r: (-r["mean_score"], r["model"]))
        for r in rows:
            r["rank"] = 1 + sum(1 for o in rows if o["mean_score"] > r["mean_score"])
    else:
        rows.sort(key=lambda r: r["model"])
    return rows


def _why_missing(planned: list[dict[str, Any]], dataset: str) -> str:
    case = next((c for c in planned if c["dataset"] == dataset), None)
    if case is None:
        return "not run"
    return "error" if case["status"] == "error" else "no score"


def unranked(cases: list[dict[str, Any]], multi: bool) -> list[str]:
    """Models with no completed case (every case errored)."""
    done = by_model(cases, multi)
    return [m for m in dict.fromkeys(model_label(c, multi) for c in cases) if m not in done]


# -- paired comparisons ------------------------------------------------------------------


def paired(cases: list[dict[str, Any]], a: str, b: str, datasets: list[str], per_item: dict[str, dict[str, float]],
           multi: bool) -> dict[str, Any] | None:
    """A - B on the items both answered in ``datasets``: the paired
    bootstrap of the difference (all datasets) and the exact McNemar test
    per dataset where scores are pass/fail.  None: no shared item."""
    done = by_model(cases, multi)
    strata_a: list[list[float]] = []
    strata_b: list[list[float]] = []
    per_dataset: dict[str, Any] = {}
    for d in datasets:
        ca, cb = done.get(a, {}).get(d), done.get(b, {}).get(d)
        if ca is None or cb is None:
            continue
        sa, sb = per_item.get(ca["case_id"], {}), per_item.get(cb["case_id"], {})
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


def paired_comparison(cases: list[dict[str, Any]], ranking: list[dict[str, Any]],
                      per_item: dict[str, dict[str, float]], multi: bool) -> dict[str, Any] | None:
    """The top two of the ranking, on its basis."""
    ranked = [r for r in ranking if r["rank"] is not None]
    if len(ranked) < 2:
        return None
    return paired(cases, ranked[0]["model"], ranked[1]["model"], ranked[0]["datasets"], per_item, multi)


# -- strengths ------------------------------------------------------------------------------


def strengths(cases: list[dict[str, Any]], multi: bool, basis: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per model: mean score per task type over the ranking basis, its rank
    there among the models, and the task types that are its strengths (best
    of several models, or 5+ points above its own mean) and weaknesses
    (worst of several, or 5+ below)."""
    keep = set(basis) if basis is not None else None
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cases:
        if completed(c) and (keep is None or c["dataset"] in keep):
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
            best = len(rivals) > 1 and rank == 1 and v > rivals[-1]
            worst = len(rivals) > 1 and rank == len(rivals) and v < rivals[0]
            if best or (len(ts) > 1 and v >= own + 0.05):
                good.append(t)
            elif worst or (len(ts) > 1 and v <= own - 0.05):
                bad.append(t)
        out[m] = {"by_task_type": by_type, "strengths": good, "weaknesses": bad}
    return out


# -- speed ---------------------------------------------------------------------------------------


def measured_speed(cases: list[dict[str, Any]], multi: bool) -> dict[str, float]:
    """Generated tokens per second of engine time, per model, over its cases
    whose generation was timed alone on its devices.  Models with no such
    case (the model-free engines, nothing generated, or every timing shared
    the devices with another engine: overlap.py) are absent: no speed, not 0,
    so no ranking, plot or recommendation claims one."""
    toks: dict[str, float] = defaultdict(float)
    secs: dict[str, float] = defaultdict(float)
    for c in cases:
        p = c.get("performance") or {}
        if not timed_alone(p):
            continue
        toks[model_label(c, multi)] += p.get("completion_tokens") or 0
        secs[model_label(c, multi)] += p["generation_s"]
    return {m: toks[m] / secs[m] for m in toks if secs[m] > 0 and toks[m] > 0}


# -- the recommendation --------------------------------------------------------------------------


def recommendation(cases: list[dict[str, Any]], ranking: list[dict[str, Any]], pair: dict[str, Any] | None,
                   by_type: dict[str, dict[str, Any]], per_item: dict[str, dict[str, float]], multi: bool) -> str:
    """A paragraph a person can act on, every claim taken from the numbers."""
    if not ranking:
        return "No case completed, so there is nothing to recommend: fix the errors listed below and rerun."
    speed = measured_speed(cases, multi)
    parts: list[str] = []
    top = ranking[0]
    if len(ranking) == 1:
        parts.append(f"Only one model completed a case: {top['model']} scored {pct(top['mean_score'])} on average"
                     f"{_ci(top)} over {top['n_datasets']} dataset(s); compare it with another model or with a "
                     "baseline (--baseline) before choosing.")
    elif top["rank"] is None:
        parts.append("No dataset was completed by every model, so no model is ranked above another: compare them "
                     "per dataset in the score table. Coverage: " +
                     "; ".join(f"{r['model']} {r['completed']}/{r['planned']}" for r in ranking) + ".")
    else:
        shared = {model_label(c, multi) for c in cases if (c.get("performance") or {}).get("overlapped_with")}
        parts += _verdict(ranking, pair, speed, shared - set(speed))
        parts += _specialists(cases, ranking, by_type, per_item, multi)
    weak = by_type.get(top["model"], {}).get("weaknesses") or []
    if weak and top["rank"] is not None and len(ranking) > 1:
        parts.append(f"{top['model']} is weakest at {', '.join(weak)}.")
    if len(speed) > 1:
        fastest = max(speed, key=lambda m: speed[m])
        parts.append(f"Fastest: {fastest} at {speed[fastest]:.0f} tokens/s (speed measured for {len(speed)} of "
                     f"{len(ranking)} models).")
    short = [r for r in ranking if r["missing"]]
    if short and top["rank"] is not None:
        parts.append("Ranked over the " + f"{top['n_datasets']} dataset(s) every model completed; " +
                     "; ".join(f"{r['model']} lacks {', '.join(x['dataset'] for x in r['missing'])}" for r in short[:5])
                     + ".")
    errors = [c["case_id"] for c in cases if c["status"] == "error"]
    if errors:
        parts.append(f"{len(errors)} case(s) ended in an error and count for nothing here: {', '.join(errors[:5])}"
                     + (" and more." if len(errors) > 5 else "."))
    return " ".join(parts)


def _verdict(ranking: list[dict[str, Any]], pair: dict[str, Any] | None, speed: dict[str, float],
             shared: set[str] = frozenset()) -> list[str]:
    """``shared``: models whose speed was measured only while another engine shared their devices."""
    first, second = ranking[0], ranking[1]
    lead = (f"{first['model']} has the highest mean score, {pct(first['mean_score'])}{_ci(first)} over "
            f"{first['n_datasets']} dataset(s), against {second['model']}'s {pct(second['mean_score'])}.")
    if first["mean_score"] == second["mean_score"]:
        lead = (f"{first['model']} and {second['model']} have the same mean score, {pct(first['mean_score'])}, over "
                f"{first['n_datasets']} dataset(s).")
    if pair is None:
        return [lead, f"They share no scored item, so the difference cannot be tested: no recommendation."]
    diff = (f"{points(pair['difference'])} points for {pair['model_a']}, 95% CI {points(pair['low'])} to "
            f"{points(pair['high'])}, {p_is(pair['p_value'])}")
    on = f"on the {pair['n_items']} items both answered"
    if pair["significant"]:
        better, worse = ((pair["model_a"], pair["model_b"]) if pair["difference"] > 0
                         else (pair["model_b"], pair["model_a"]))
        out = [lead, f"The difference is significant {on} ({diff}): prefer {better} over {worse}."]
        if better != first["model"]:
            out.append(f"(The paired comparison on shared items reverses the order of the means: trust it, since "
                       "it compares the two on the same items.)")
        return out
    a, b = pair["model_a"], pair["model_b"]
    tied = f"The two are statistically tied {on} ({diff}): neither is shown to be better."
    if a in speed and b in speed:
        faster, slower = (a, b) if speed[a] >= speed[b] else (b, a)
        return [lead, tied + f" {faster} is faster ({speed[faster]:.0f} against {speed[slower]:.0f} tokens/s), "
                f"so it is the better buy."]
    unmeasured = [m for m in (a, b) if m not in speed and m not in shared]
    sharing = [m for m in (a, b) if m in shared]
    why = []
    if unmeasured:
        why.append(f"no speed was measured for {' and '.join(unmeasured)}")
    if sharing:
        why.append(f"the speed of {' and '.join(sharing)} was measured while another engine shared "
                   f"{'its' if len(sharing) == 1 else 'their'} devices (⚠)")
    reason = "; ".join(why)
    return [lead, tied + f" {reason[0].upper()}{reason[1:]}, so speed cannot break the tie."]


def _specialists(cases: list[dict[str, Any]], ranking: list[dict[str, Any]], by_type: dict[str, dict[str, Any]],
                 per_item: dict[str, dict[str, float]], multi: bool) -> list[str]:
    """Task types where another model beats the top one, significantly, on the same items."""
    top = ranking[0]["model"]
    basis = ranking[0]["datasets"]
    task_of = {c["dataset"]: c.get("task_type") or "unknown" for c in cases}
    found = []
    for t in sorted({task_of[d] for d in basis}):
        leaders = [m for m in by_type if t in by_type[m]["by_task_type"]]
        best = max(leaders, key=lambda m: (by_type[m]["by_task_type"][t]["score"], m == top))
        if best == top:
            continue
        pair = paired(cases, best, top, [d for d in basis if task_of[d] == t], per_item, multi)
        if pair is not None and pair["significant"] and pair["difference"] > 0:
            found.append(f"{t}: {best} ({pct(by_type[best]['by_task_type'][t]['score'])}, "
                         f"{points(pair['difference'])} points over {top}, {p_is(pair['p_value'])})")
    return ["Where one task type matters most, pick its leader instead: " + "; ".join(found) + "."] if found else []


def _ci(row: dict[str, Any]) -> str:
    return f" (95% CI {pct(row['ci_low'])}–{pct(row['ci_high'])})" if row.get("ci_low") is not None else ""
