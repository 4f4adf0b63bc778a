"""The Markdown comparison, readable at a glance.  Each table says what its
figures mean; a figure nothing measured is "—"."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from . import fmt
from .fmt import pct
from .ranking import model_label

# Re-exported for callers of the older names.


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def score_cells(comparison: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], tuple[str, str]]]:
    """models, datasets and {(model, dataset): (kind, text)} with kind best|score|error."""
    multi = len(comparison["presets"]) > 1
    cases = comparison["cases"]
    models = list(dict.fromkeys(model_label(c, multi) for c in cases))
    datasets = list(dict.fromkeys(c["dataset"] for c in cases))
    best = comparison["best_per_dataset"]
    cells: dict[tuple[str, str], tuple[str, str]] = {}
    for c in cases:
        m = model_label(c, multi)
        if c["status"] == "error":
            cells[(m, c["dataset"])] = ("error", "error")
            continue
        b = best.get(c["dataset"], {})
        # best of several, and not shared by all of them (a tie of everyone is nobody's best)
        rivals = b.get("n_models", len(models))
        is_best = rivals > 1 and m in b.get("models", [b.get("model")]) and len(b.get("models", [0])) < rivals
        cells[(m, c["dataset"])] = ("best" if is_best else "score", pct(c.get("score")))
    return models, datasets, cells


def score_table(comparison: dict[str, Any]) -> str:
    models, datasets, cells = score_cells(comparison)
    rows = []
    for m in models:
        row = [m]
        for d in datasets:
            kind, text = cells.get((m, d), ("none", fmt.DASH))
            row.append(f"**{text}**" if kind == "best" else text)
        rows.append(row)
    return _table(rows, ["model", *datasets])


def render_markdown(comparison: dict[str, Any]) -> str:
    lines = [
        f"# {comparison['label']} — preset {comparison['preset']}",
        "",
        f"Run `{comparison['run_id']}`, {comparison['started_at']} → {comparison['finished_at']}, "
        f"engine `{comparison['engine']}`, {len(comparison['cases'])} cases. "
        f"Hardware: {_hardware(comparison['manifest'])}.",
        "",
        "## Scores",
        "",
        "Primary metric per dataset (pass@1 for code, accuracy / exact match otherwise); "
        "**bold** = best per dataset; `error` = the case could not run; — = not run.",
        "",
        score_table(comparison),
        "",
        "## Ranking",
        "",
    ]
    lines += ranking_section(comparison)
    lines += ["", "## Paired comparison of the top two", ""]
    lines += paired_section(comparison.get("paired_comparison"))
    lines += ["", "## Strengths and weaknesses per task type", ""]
    lines += strengths_section(comparison.get("strengths") or {})
    lines += ["", "## Recommendation", "", comparison.get("recommendation") or fmt.DASH]
    lines += gating_section(comparison.get("gating") or {})
    lines += ["", "## Best per dataset", ""]
    lines.append(_table(
        [[d, ", ".join(b.get("models") or [b["model"]]), pct(b["score"]), b["metric"]]
         for d, b in comparison["best_per_dataset"].items()],
        ["dataset", "best model(s)", "score", "metric"],
    ))
    lines += ["", "## Cases", "",
              "Per case: the score with its 95% CI (Wilson for pass/fail items, else a bootstrap); *not judged* = "
              "samples the harness could not judge (sandbox_error), kept out of n; *cut off* = share of "
              "samples the engine stopped at the token limit; *unclosed think* = share whose `<think>` block never "
              "closed (no answer).", ""]
    lines.append(cases_table(comparison))
    lines += not_judged_section(comparison.get("not_judged") or {})
    lines += ["", "## Performance", "",
              "*gen tokens* = tokens the engine generated for the case (— for the model-free engines, which count words); "
              "*tokens/s* = generated tokens per second of the engine calls that made the case's samples (kept from "
              "the run that made them when they come from the store); *prepare* = one-time preparation before the "
              "load (conversion, download); *load* = loading the model in this run (— when it was not loaded here); "
              "*peak memory* = what vLLM reserved on the engine's GPUs (its memory fraction, not what the model "
              "needs), what the transformers engine used, or the RSS of the engine's own processes, during its "
              "calls; *gen* = the case's share of engine "
              "time; *reused* = samples taken from the store. — = not measured (model-free engines measure no "
              "speed, memory or load). Speeds assume the engine had its devices to itself; load times include a "
              "short warm-up call (compilation, graph capture).", ""]
    lines += timing_section(comparison)
    lines.append(performance_table(comparison))
    if comparison.get("presets_compared"):
        lines += ["", "## Presets side by side", ""]
        lines += presets_section(comparison)
    errors = [c for c in comparison["cases"] if c["status"] == "error"]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- `{c['case_id']}`: {c.get('error') or 'unknown error'}" for c in errors]
        cut = [c["case_id"] for c in errors if c.get("cut_short")]
        if cut:
            lines += ["", f"Cut short (their engine died during the run): {', '.join(f'`{x}`' for x in cut)}. "
                          "Their stored results are kept; a rerun generates only what is missing."]
    return "\n".join(lines) + "\n"


def ranking_section(comparison: dict[str, Any]) -> list[str]:
    ranking = comparison["rankings"]
    lines: list[str] = []
    if not ranking:
        lines.append("No case completed.")
    elif ranking[0]["rank"] is None:
        lines.append("No dataset was completed by every model, so no model is ranked: compare them per dataset above.")
        lines.append("")
        lines.append(_table([[r["model"], f"{r['completed']}/{r['planned']}", pct(r["mean_own"])] for r in ranking],
                            ["model", "completed", "mean over its own datasets"]))
    else:
        basis = ranking[0]["datasets"]
        lines.append(f"Mean primary score over the {len(basis)} dataset(s) every ranked model completed "
                     f"({', '.join(basis)}), with its 95% confidence interval (Wilson for one pass/fail dataset, "
                     "else a bootstrap within each dataset's items). Equal means share a rank. *completed* = cases "
                     "with a score out of those planned.")
        lines.append("")
        lines.append(_table(
            [[r["rank"], r["model"], pct(r["mean_score"]), fmt.ci(r.get("ci_low"), r.get("ci_high")),
              f"{r['completed']}/{r['planned']}",
              ", ".join(f"{x['dataset']} ({x['why']})" for x in r["missing"]) or fmt.DASH] for r in ranking],
            ["rank", "model", "mean score", "95% CI", "completed", "not in the ranking's basis"],
        ))
    if comparison.get("unranked"):
        lines += ["", "Not ranked (no case completed): " + ", ".join(comparison["unranked"]) + "."]
    return lines


def cases_table(comparison: dict[str, Any]) -> str:
    rows = []
    for c in comparison["cases"]:
        ci = c.get("ci") or {}
        rows.append([c["case_id"], c["status"], fmt.count(c.get("n_items")), pct(c.get("score")),
                     fmt.ci(ci.get("low"), ci.get("high")), _not_judged(c), pct(c.get("cut_off")),
                     pct(c.get("unclosed_thinking"))])
    return _table(rows, ["case", "status", "items", "score", "95% CI", "not judged", "cut off", "unclosed think"])


def _not_judged(case: dict[str, Any]) -> str:
    n = case.get("not_judged") or 0
    return str(n) if case.get("status") != "error" else fmt.DASH


def not_judged_section(summary: dict[str, Any]) -> list[str]:
    rows = summary.get("cases") or []
    if not rows:
        return []
    flag = summary.get("flag_share", 0.05)
    lines = ["", "## Samples not judged", "",
             f"Samples the harness could not judge are out of n (they count neither for nor against the model). "
             f"A case is flagged when they reach {pct(flag)} of its samples: its score then rests on fewer samples "
             "than planned, and not at random.", ""]
    lines.append(_table(
        [[("⚠ " if r["flagged"] else "") + r["case_id"], r["not_judged"], r["samples"], pct(r["share"]),
          ", ".join(f"{k} {v}" for k, v in sorted(r["kinds"].items()))] for r in rows],
        ["case", "not judged", "samples", "share", "kinds"],
    ))
    return lines


def gating_section(gating: dict[str, Any]) -> list[str]:
    if not gating.get("checked"):
        return []
    lines = ["", "## Gating", ""]
    regs = gating.get("regressions") or []
    if regs:
        lines += [f"- **regressed** `{g['case_id']}`: {g['message']}" for g in regs]
    else:
        lines.append("No regression" + (f" against `{gating['baseline']}`." if gating.get("baseline") else "."))
    notes = [g for g in gating.get("notes") or [] if g.get("kind") != "paired"]
    if notes:
        lines.append("")
        lines += [f"- note `{g['case_id']}`: {g['message']}" for g in notes]
    return lines


def timing_section(comparison: dict[str, Any]) -> list[str]:
    """The cases whose speed and memory were measured on devices another engine used at the same time."""
    timing = comparison.get("timing") or {}
    flagged = timing.get("overlapped") or {}
    if not flagged:
        return []
    shown = "; ".join(f"`{cid}` with {', '.join(others)}" for cid, others in list(flagged.items())[:8])
    more = f" and {len(flagged) - 8} more" if len(flagged) > 8 else ""
    return [f"{fmt.OVERLAP} = measured while another engine loaded or generated on the same devices ({shown}{more}): these "
            "speeds and memory figures are not comparable and are kept out of speed rankings, the recommendation, "
            f"the plots and the throughput gate. {timing['advice']}", ""]


def performance_table(comparison: dict[str, Any]) -> str:
    rows = []
    for c in comparison["cases"]:
        p = c.get("performance") or {}
        rows.append([
            c["case_id"], p.get("device") or fmt.DASH, fmt.tokens(p),
            fmt.speed(p), fmt.seconds(p.get("prepare_s")), fmt.seconds(p.get("load_s")),
            fmt.memory(p), fmt.seconds(p.get("generation_s")), fmt.seconds(p.get("scoring_s")),
            fmt.seconds(c.get("wall_s") if c["status"] != "error" else None),
            f"{p.get('generations_reused') or 0}/{(p.get('generations_reused') or 0) + (p.get('generated') or 0)}",
        ])
    return _table(rows, ["case", "device", "gen tokens", "tokens/s", "prepare", "load", "peak memory", "gen",
                         "score", "wall", "reused"])


def paired_section(paired: dict[str, Any] | None) -> list[str]:
    if not paired:
        return ["Fewer than two models are ranked on a shared dataset: no paired comparison."]
    verdict = "**significant**" if paired["significant"] else "not significant"
    lines = [
        f"{paired['model_a']} − {paired['model_b']} on the {paired['n_items']} items both answered: "
        f"{fmt.points(paired['difference'])} points (95% CI {fmt.points(paired['low'])} to "
        f"{fmt.points(paired['high'])}, paired bootstrap {fmt.p_is(paired['p_value'])}): {verdict} at the 5% "
        "level.",
        "",
    ]
    rows = []
    for d, e in paired["datasets"].items():
        mc = e.get("mcnemar")
        rows.append([d, e["n_items"], pct(e["score_a"]), pct(e["score_b"]),
                     f"{mc['only_a']} / {mc['only_b']}" if mc else fmt.DASH,
                     fmt.p_value(mc["p_value"]) if mc else fmt.DASH])
    lines.append(_table(rows, ["dataset", "items", paired["model_a"], paired["model_b"], "only A / only B passed",
                               "McNemar exact p"]))
    return lines


def strengths_section(strengths: dict[str, Any]) -> list[str]:
    if not strengths:
        return ["No completed case."]
    rows = []
    for m, e in strengths.items():
        scores = ", ".join(f"{t} {pct(v['score'])} (#{v['rank']}/{v['of']})" for t, v in e["by_task_type"].items())
        rows.append([m, scores, ", ".join(e["strengths"]) or fmt.DASH, ", ".join(e["weaknesses"]) or fmt.DASH])
    return [_table(rows, ["model", "score per task type (rank)", "strengths", "weaknesses"])]


def _hardware(manifest: dict[str, Any]) -> str:
    hw = manifest.get("hardware", {})
    if hw.get("device") == "gpu":
        return ", ".join(hw.get("gpus", []))
    return f"CPU ({hw.get('cpu_count', '?')} cores)"


def presets_section(comparison: dict[str, Any]) -> list[str]:
    compared = comparison["presets_compared"]
    lines = ["Per model and preset, over the datasets every preset of the model completed. *score vs* = the "
             "preset's score minus the first preset's on the same items, with its paired 95% CI: a preset can cost "
             "accuracy (memory_optimized's fp8 KV cache), not only time.", ""]
    diffs = {(m, d["preset"]): d for m, rows in (comparison.get("preset_differences") or {}).items() for d in rows}
    rows = []
    for model, presets in compared.items():
        for preset, r in presets.items():
            d = diffs.get((model, preset))
            speed = fmt.rate(r.get("tokens_per_s"))
            if r.get("overlapped_with"):
                speed += f" {fmt.OVERLAP}" if speed != fmt.DASH else f" {fmt.OVERLAP} (shared devices)"
            rows.append([model, preset, speed, fmt.seconds(r.get("prepare_s")),
                         fmt.seconds(r.get("load_s")), fmt.memory(r), pct(r.get("mean_score")), _preset_diff(d)])
    lines.append(_table(rows, ["model", "preset", "tokens/s", "prepare", "load", "peak memory", "mean score",
                               "score vs first preset"]))
    return lines


def _preset_diff(d: dict[str, Any] | None) -> str:
    if d is None:
        return fmt.DASH
    if d.get("difference") is None:
        return "no shared item"
    sig = ", significant" if d["significant"] else ""
    return (f"{fmt.points(d['difference'])} vs {d['against']} (95% CI {fmt.points(d['low'])} to "
            f"{fmt.points(d['high'])}, {d['n_items']} items{sig})")
