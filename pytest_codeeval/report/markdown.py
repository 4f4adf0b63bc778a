"""The Markdown comparison, readable at a glance."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from .comparison import model_label


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def fmt_bytes(n: int | None) -> str:
    if not n:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def score_table(comparison: dict[str, Any]) -> str:
    multi = len(comparison["presets"]) > 1
    cases = comparison["cases"]
    models = list(dict.fromkeys(model_label(c, multi) for c in cases))
    datasets = list(dict.fromkeys(c["dataset"] for c in cases))
    best = comparison["best_per_dataset"]
    cell: dict[tuple[str, str], str] = {}
    for c in cases:
        m = model_label(c, multi)
        if c["status"] == "error":
            text = "error"
        else:
            text = pct(c.get("score"))
            if best.get(c["dataset"], {}).get("model") == m and len(models) > 1:
                text = f"**{text}**"
        cell[(m, c["dataset"])] = text
    rows = [[m, *[cell.get((m, d), "") for d in datasets]] for m in models]
    return tabulate(rows, headers=["model", *datasets], tablefmt="github")


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
        "**bold** = best per dataset.",
        "",
        score_table(comparison),
        "",
        "## Ranking",
        "",
    ]
    ranking = comparison["rankings"]
    if ranking:
        lines.append("Mean primary score over the datasets each model completed, with its 95% confidence "
                     "interval (Wilson for one pass/fail dataset, else a bootstrap within each dataset's items).")
        lines.append("")
        lines.append(tabulate(
            [[r["rank"], r["model"], pct(r["mean_score"]), _ci(r.get("ci_low"), r.get("ci_high")), r["n_datasets"],
              r["n_errors"]] for r in ranking],
            headers=["rank", "model", "mean score", "95% CI", "datasets", "errors"], tablefmt="github",
        ))
    else:
        lines.append("No case completed.")
    lines += ["", "## Paired comparison of the top two", ""]
    lines += paired_section(comparison.get("paired_comparison"))
    lines += ["", "## Strengths and weaknesses per task type", ""]
    lines += strengths_section(comparison.get("strengths") or {})
    lines += ["", "## Recommendation", "", comparison.get("recommendation") or "—"]
    gating = comparison.get("gating") or {}
    if gating.get("checked"):
        lines += ["", "## Gating", ""]
        if gating["regressions"]:
            lines += [f"- **regressed** `{g['case_id']}`: {g['message']}" for g in gating["regressions"]]
        else:
            lines.append("No regression" + (f" against `{gating['baseline']}`." if gating.get("baseline") else "."))
    lines += ["", "## Best per dataset", ""]
    lines.append(tabulate(
        [[d, b["model"], pct(b["score"]), b["metric"]] for d, b in comparison["best_per_dataset"].items()],
        headers=["dataset", "best model", "score", "metric"], tablefmt="github",
    ))
    lines += ["", "## Performance", ""]
    lines.append(performance_table(comparison))
    if comparison.get("presets_compared"):
        lines += ["", "## Presets side by side", ""]
        lines.append(presets_table(comparison["presets_compared"]))
    errors = [c for c in comparison["cases"] if c["status"] == "error"]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- `{c['case_id']}`: {c.get('error') or 'unknown error'}" for c in errors]
        cut = [c["case_id"] for c in errors if c.get("cut_short")]
        if cut:
            lines += ["", f"Cut short (their engine died during the run): {', '.join(f'`{x}`' for x in cut)}. "
                          "Their stored results are kept; a rerun generates only what is missing."]
    return "\n".join(lines) + "\n"


def performance_table(comparison: dict[str, Any]) -> str:
    rows = []
    for c in comparison["cases"]:
        p = c.get("performance") or {}
        rows.append([
            c["case_id"], c.get("n_items"), p.get("completion_tokens"),
            _num(p.get("tokens_per_s")), _num(p.get("load_s")), fmt_bytes(p.get("peak_memory_bytes")),
            _num(p.get("generation_s")), _num(p.get("scoring_s")), _num(c.get("wall_s")),
        ])
    return tabulate(rows, headers=["case", "items", "gen tokens", "tokens/s", "load s", "peak memory",
                                   "gen s", "score s", "wall s"], tablefmt="github")


def _ci(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"{100 * low:.1f}–{100 * high:.1f}%"


def paired_section(paired: dict[str, Any] | None) -> list[str]:
    if not paired:
        return ["Fewer than two models completed a shared dataset: no paired comparison."]
    verdict = "**significant**" if paired["significant"] else "not significant"
    lines = [
        f"{paired['model_a']} − {paired['model_b']} on the {paired['n_items']} items both answered: "
        f"{100 * paired['difference']:+.1f} points (95% CI {100 * paired['low']:+.1f} to {100 * paired['high']:+.1f}, "
        f"paired bootstrap p = {paired['p_value']:.3g}): {verdict} at the 5% level.",
        "",
    ]
    rows = []
    for d, e in paired["datasets"].items():
        mc = e.get("mcnemar")
        rows.append([d, e["n_items"], pct(e["score_a"]), pct(e["score_b"]),
                     f"{mc['only_a']} / {mc['only_b']}" if mc else "—",
                     f"{mc['p_value']:.3g}" if mc else "—"])
    lines.append(tabulate(rows, headers=["dataset", "items", paired["model_a"], paired["model_b"],
                                         "only A / only B passed", "McNemar exact p"], tablefmt="github"))
    return lines


def strengths_section(strengths: dict[str, Any]) -> list[str]:
    if not strengths:
        return ["No completed case."]
    rows = []
    for m, e in strengths.items():
        scores = ", ".join(f"{t} {pct(v['score'])} (#{v['rank']}/{v['of']})" for t, v in e["by_task_type"].items())
        rows.append([m, scores, ", ".join(e["strengths"]) or "—", ", ".join(e["weaknesses"]) or "—"])
    return [tabulate(rows, headers=["model", "score per task type (rank)", "strengths", "weaknesses"],
                     tablefmt="github")]


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def _hardware(manifest: dict[str, Any]) -> str:
    hw = manifest.get("hardware", {})
    if hw.get("device") == "gpu":
        return ", ".join(hw.get("gpus", []))
    return f"CPU ({hw.get('cpu_count', '?')} cores)"


def presets_table(compared: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows = [
        [model, preset, _num(r.get("tokens_per_s")), _num(r.get("load_s")), fmt_bytes(r.get("peak_memory_bytes")),
         pct(r.get("mean_score"))]
        for model, presets in compared.items()
        for preset, r in presets.items()
    ]
    return tabulate(rows, headers=["model", "preset", "tokens/s", "load s", "peak memory", "mean score"],
                    tablefmt="github")
