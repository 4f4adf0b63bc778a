"""One self-contained HTML report: the tables, the plots (inlined as data
URIs), the recommendation, and the failing samples grouped by cause so a
person can read what went wrong."""

from __future__ import annotations

import base64
import html
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from .comparison import model_label
from .markdown import fmt_bytes, pct

MAX_PER_GROUP = 12  # samples shown per cause (the JSONL logs hold them all)
MAX_TEXT = 4000  # characters of a prompt / output shown

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f2f2f2}.best{font-weight:bold;background:#e6f4ea}.err{color:#b00}
pre{background:#f7f7f7;padding:.5em;white-space:pre-wrap;max-height:22em;overflow:auto;font-size:.85em}
details{margin:.3em 0}summary{cursor:pointer}.cause{margin-left:1em}img{max-width:100%;margin:.5em 1em .5em 0}
.muted{color:#666}
"""


def cause_of(row: dict[str, Any]) -> str:
    """A failure's cause, with numbers and quoted values blanked so that
    samples failing the same way land in one group."""
    detail = (row.get("detail") or "").strip().splitlines()
    first = detail[0] if detail else "(no detail)"
    first = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", first)
    first = re.sub(r"\d+(\.\d+)?", "N", first)
    return f"{row.get('verdict')}: {first[:100]}"


def group_failures(results: list[dict[str, Any]]) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for r in results:
        for row in r.get("samples") or []:
            if not row.get("passed"):
                groups[cause_of(row)].append((r, row))
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'


def render_html(comparison: dict[str, Any], results: list[dict[str, Any]], plots: dict[str, Path]) -> str:
    multi = len(comparison["presets"]) > 1
    models = list(dict.fromkeys(model_label(c, multi) for c in comparison["cases"]))
    datasets = list(dict.fromkeys(c["dataset"] for c in comparison["cases"]))
    best = comparison["best_per_dataset"]
    cells: dict[tuple[str, str], str] = {}
    for c in comparison["cases"]:
        m = model_label(c, multi)
        if c["status"] == "error":
            cells[(m, c["dataset"])] = f'<span class="err" title="{_e(c.get("error"))}">error</span>'
            continue
        ci = c.get("ci")
        text = pct(c.get("score")) + (f' <span class="muted">[{pct(ci["low"])}–{pct(ci["high"])}]</span>' if ci else "")
        is_best = best.get(c["dataset"], {}).get("model") == m and len(models) > 1
        cells[(m, c["dataset"])] = f'<span class="best">{text}</span>' if is_best else text
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{_e(comparison['label'])} — {_e(comparison['preset'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(comparison['label'])} — preset {_e(comparison['preset'])}</h1>",
        f"<p class='muted'>Run {_e(comparison['run_id'])}, {_e(comparison['started_at'])} → "
        f"{_e(comparison['finished_at'])}, engine {_e(comparison['engine'])}, {len(comparison['cases'])} cases.</p>",
        "<h2>Recommendation</h2>", f"<p>{_e(comparison.get('recommendation'))}</p>",
        "<h2>Scores</h2><p class='muted'>Primary metric, 95% CI in brackets; highlighted = best per dataset.</p>",
        _table(["model", *datasets], [[_e(m), *[cells.get((m, d), "") for d in datasets]] for m in models]),
        "<h2>Ranking</h2>",
        _table(["rank", "model", "mean score", "95% CI", "datasets", "errors"], [
            [str(r["rank"]), _e(r["model"]), pct(r["mean_score"]),
             "—" if r.get("ci_low") is None else f"{pct(r['ci_low'])}–{pct(r['ci_high'])}",
             str(r["n_datasets"]), str(r["n_errors"])] for r in comparison["rankings"]]),
    ]
    paired = comparison.get("paired_comparison")
    parts.append("<h2>Paired comparison of the top two</h2>")
    if paired:
        parts.append(
            f"<p>{_e(paired['model_a'])} − {_e(paired['model_b'])}: {100 * paired['difference']:+.1f} points "
            f"(95% CI {100 * paired['low']:+.1f} to {100 * paired['high']:+.1f}, p = {paired['p_value']:.3g}, "
            f"{paired['n_items']} paired items): <b>{'significant' if paired['significant'] else 'not significant'}</b>.</p>")
    else:
        parts.append("<p>Fewer than two models completed a shared dataset.</p>")
    parts.append("<h2>Strengths and weaknesses per task type</h2>")
    parts.append(_table(["model", "per task type", "strengths", "weaknesses"], [
        [_e(m), _e(", ".join(f"{t} {pct(v['score'])} (#{v['rank']}/{v['of']})" for t, v in e["by_task_type"].items())),
         _e(", ".join(e["strengths"]) or "—"), _e(", ".join(e["weaknesses"]) or "—")]
        for m, e in (comparison.get("strengths") or {}).items()]))
    gating = comparison.get("gating") or {}
    if gating.get("checked"):
        parts.append("<h2>Gating</h2>")
        regs = gating.get("regressions") or []
        parts.append("<ul>" + "".join(f"<li class='err'>{_e(g['case_id'])}: {_e(g['message'])}</li>" for g in regs)
                     + "</ul>" if regs else "<p>No regression.</p>")
    parts.append("<h2>Plots</h2>" + "".join(_img(p) for p in plots.values() if p.is_file()))
    parts.append("<h2>Performance</h2>")
    parts.append(_table(["case", "items", "tokens/s", "load s", "peak memory", "gen s", "score s", "wall s"], [
        [_e(c["case_id"]), _e(c.get("n_items")), _e((c.get("performance") or {}).get("tokens_per_s")),
         _e((c.get("performance") or {}).get("load_s")), _e(fmt_bytes((c.get("performance") or {}).get("peak_memory_bytes"))),
         _e((c.get("performance") or {}).get("generation_s")), _e((c.get("performance") or {}).get("scoring_s")),
         _e(c.get("wall_s"))] for c in comparison["cases"]]))
    parts.append(_failures(results))
    parts.append("</body></html>")
    return "\n".join(parts)


def _failures(results: list[dict[str, Any]]) -> str:
    groups = group_failures(results)
    total = sum(len(v) for v in groups.values())
    out = [f"<h2>Failing samples by cause</h2><p class='muted'>{total} failing samples in {len(groups)} causes; "
           f"up to {MAX_PER_GROUP} shown per cause (the JSONL sample logs hold every one).</p>"]
    for cause, rows in groups.items():
        out.append(f"<details><summary><b>{_e(cause)}</b> — {len(rows)} sample(s)</summary><div class='cause'>")
        for r, row in rows[:MAX_PER_GROUP]:
            out.append(
                f"<details><summary>{_e(r['case_id'])} · {_e(row['task_id'])} · sample {_e(row.get('sample'))}"
                f" — {_e((row.get('detail') or '')[:160])}</summary>"
                f"<p>Prompt</p><pre>{_e((row.get('prompt') or '')[:MAX_TEXT])}</pre>"
                f"<p>Raw output</p><pre>{_e((row.get('raw_output') or '')[:MAX_TEXT])}</pre>"
                f"<p>Extracted</p><pre>{_e((row.get('extracted') or '')[:MAX_TEXT])}</pre>"
                f"<p>Reason</p><pre>{_e(row.get('detail'))}</pre></details>")
        out.append("</div></details>")
    return "\n".join(out)
