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

from . import fmt
from .fmt import pct
from .markdown import score_cells

MAX_PER_GROUP = 12  # samples shown per cause (the JSONL logs hold them all)
MAX_TEXT = 4000  # characters of a prompt / output shown

# Tables scroll inside their own box (wide: many datasets; long: many cases),
# the first column and the header row stay in view; numbers never wrap.
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1400px;color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.5em;overflow-wrap:anywhere}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.box{overflow:auto;max-width:100%;margin:.6em 0;border:1px solid #ddd}
.box.tall{max-height:34em}
table{border-collapse:separate;border-spacing:0;font-size:.9em}
th,td{border-right:1px solid #e3e3e3;border-bottom:1px solid #e3e3e3;padding:.25em .55em;text-align:left;
white-space:nowrap;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.wrap{white-space:normal;min-width:24em}
th.names{white-space:normal;min-width:5.5em;vertical-align:bottom}
th{background:#f2f2f2;position:sticky;top:0;z-index:2;vertical-align:bottom}
tr>:first-child{position:sticky;left:0;background:#fff;z-index:1;max-width:28em;overflow:hidden;text-overflow:ellipsis}
tr>th:first-child{background:#f2f2f2;z-index:3}
.best{font-weight:bold}.err{color:#b00}.warn{color:#9a5b00}.muted{color:#666}small{color:#555}
p.note{color:#555;font-size:.9em;max-width:75em}
pre{background:#f7f7f7;padding:.5em;white-space:pre-wrap;max-height:22em;overflow:auto;font-size:.85em}
details{margin:.3em 0}summary{cursor:pointer}.cause{margin-left:1em}
figure{margin:.5em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
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


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), tall: bool = False,
           wrap: set[int] = frozenset(), wrap_headers: bool = False) -> str:
    """Cells are HTML already; ``numeric``: column indices aligned right;
    ``wrap``: columns of prose that may wrap."""
    def cls(i: int, cell: bool = True) -> str:
        names = (["num"] if i in numeric else []) + (["wrap"] if i in wrap and cell else [])
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(f"<th{cls(i, False)}>{_e(h)}</th>" for i, h in enumerate(headers))
    if wrap_headers:  # long snake_case names (datasets) may break after an underscore
        head = "".join(f'<th class="names{" num" if i in numeric else ""}">{_e(h).replace("_", "_<wbr>")}</th>'
                       if i else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="box{" tall" if tall else ""}"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{_e(path.stem)}" src="data:image/png;base64,{data}"></figure>'


def render_html(comparison: dict[str, Any], results: list[dict[str, Any]], plots: dict[str, Path]) -> str:
    from .markdown import _hardware

    models, datasets, cells = score_cells(comparison)
    multi = len(comparison["presets"]) > 1
    by_cell = {((f"{c['model']}@{c['preset']}" if multi else c["model"]), c["dataset"]): c for c in comparison["cases"]}
    score_rows = []
    for m in models:
        row = [_e(m)]
        for d in datasets:
            kind, text = cells.get((m, d), ("none", fmt.DASH))
            case = by_cell.get((m, d))
            if kind == "error":
                row.append(f'<span class="err" title="{_e((case or {}).get("error"))}">error</span>')
                continue
            if kind == "none":
                row.append(f'<span class="muted">{fmt.DASH}</span>')
                continue
            ci = (case or {}).get("ci")
            sub = f"<br><small>{fmt.ci(ci['low'], ci['high'])}</small>" if ci else ""
            body = f'<span class="best">{text}</span>' if kind == "best" else text
            row.append(f"{body}{sub}")
        score_rows.append(row)
    score_html = _table(["model", *datasets], score_rows, numeric=set(range(1, len(datasets) + 1)), tall=True,
                        wrap_headers=True)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(comparison['label'])} — {_e(comparison['preset'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(comparison['label'])} — preset {_e(comparison['preset'])}</h1>",
        f"<p class='muted'>Run {_e(comparison['run_id'])}, {_e(comparison['started_at'])} → "
        f"{_e(comparison['finished_at'])}, engine {_e(comparison['engine'])}, {len(comparison['cases'])} cases, "
        f"{_e(_hardware(comparison['manifest']))}.</p>",
        "<h2>Recommendation</h2>", f"<p>{_e(comparison.get('recommendation'))}</p>",
        "<h2>Scores</h2>",
        _note("Primary metric per dataset, its 95% CI below; bold = best per dataset; error = the case could not run "
              "(hover for why); — = not run."),
        score_html,
        "<h2>Ranking</h2>",
        _ranking(comparison),
    ]
    parts.append("<h2>Paired comparison of the top two</h2>")
    parts.append(_paired(comparison.get("paired_comparison")))
    parts.append("<h2>Strengths and weaknesses per task type</h2>")
    parts.append(_table(["model", "per task type (rank)", "strengths", "weaknesses"], [
        [_e(m), _e(", ".join(f"{t} {pct(v['score'])} (#{v['rank']}/{v['of']})" for t, v in e["by_task_type"].items())),
         _e(", ".join(e["strengths"]) or fmt.DASH), _e(", ".join(e["weaknesses"]) or fmt.DASH)]
        for m, e in (comparison.get("strengths") or {}).items()], tall=True, wrap={1}))
    parts.append(_gating(comparison.get("gating") or {}))
    if plots:
        parts.append("<h2>Plots</h2>" + "".join(_img(p) for p in plots.values() if p.is_file()))
    parts.append("<h2>Cases</h2>")
    parts.append(_note("Not judged = samples the harness could not judge (sandbox_error), out of n; "
                       "cut off = share of samples stopped at the token limit; unclosed think = share whose <think> "
                       "block never closed (no answer)."))
    parts.append(_cases(comparison))
    parts.append(_not_judged(comparison.get("not_judged") or {}))
    parts.append("<h2>Performance</h2>")
    parts.append(_note("gen tokens = tokens the engine generated for the case (— for the model-free engines, which "
                       "count words); tokens/s = generated tokens per second of the engine calls that made the case's samples (kept "
                       "from the run that made them); prepare = one-time preparation (conversion, download); load = "
                       "loading the model in this run (with a short warm-up call); peak memory = what vLLM reserved on "
                       "the engine's GPUs, what the transformers engine used, or the RSS of the engine's own "
                       "processes; gen = the case's share of engine time; reused = samples taken from the store. — = "
                       "not measured."))
    from .markdown import timing_section

    parts += [_note(line) for line in timing_section(comparison) if line]
    parts.append(_performance(comparison))
    if comparison.get("presets_compared"):
        parts.append("<h2>Presets side by side</h2>")
        parts.append(_presets(comparison))
    errors = [c for c in comparison["cases"] if c["status"] == "error"]
    if errors:
        parts.append("<h2>Errors</h2><ul>" + "".join(
            f"<li><code>{_e(c['case_id'])}</code>: {_e(c.get('error') or 'unknown error')}</li>" for c in errors)
            + "</ul>")
    parts.append(_failures(results))
    parts.append("</body></html>")
    return "\n".join(parts)


def _ranking(comparison: dict[str, Any]) -> str:
    ranking = comparison["rankings"]
    if not ranking:
        return "<p>No case completed.</p>"
    if ranking[0]["rank"] is None:
        return (_note("No dataset was completed by every model, so no model is ranked: compare them per dataset.")
                + _table(["model", "completed", "mean over its own datasets"],
                         [[_e(r["model"]), f"{r['completed']}/{r['planned']}", pct(r["mean_own"])] for r in ranking],
                         numeric={1, 2}))
    basis = ranking[0]["datasets"]
    out = _note(f"Mean primary score over the {len(basis)} dataset(s) every ranked model completed "
                f"({', '.join(basis)}), with its 95% CI. Equal means share a rank.")
    out += _table(["rank", "model", "mean score", "95% CI", "completed", "not in the ranking's basis"], [
        [str(r["rank"]), _e(r["model"]), pct(r["mean_score"]), fmt.ci(r.get("ci_low"), r.get("ci_high")),
         f"{r['completed']}/{r['planned']}",
         _e(", ".join(f"{x['dataset']} ({x['why']})" for x in r["missing"]) or fmt.DASH)] for r in ranking],
        numeric={0, 2, 4}, tall=True)
    if comparison.get("unranked"):
        out += _note("Not ranked (no case completed): " + ", ".join(comparison["unranked"]) + ".")
    return out


def _paired(paired: dict[str, Any] | None) -> str:
    if not paired:
        return "<p>Fewer than two models are ranked on a shared dataset: no paired comparison.</p>"
    head = (f"<p>{_e(paired['model_a'])} − {_e(paired['model_b'])}: {fmt.points(paired['difference'])} points "
            f"(95% CI {fmt.points(paired['low'])} to {fmt.points(paired['high'])}, {fmt.p_is(paired['p_value'])}, "
            f"{paired['n_items']} paired items): <b>{'significant' if paired['significant'] else 'not significant'}</b>"
            "</p>")
    rows = []
    for d, e in paired["datasets"].items():
        mc = e.get("mcnemar")
        rows.append([_e(d), str(e["n_items"]), pct(e["score_a"]), pct(e["score_b"]),
                     f"{mc['only_a']} / {mc['only_b']}" if mc else fmt.DASH,
                     fmt.p_value(mc["p_value"]) if mc else fmt.DASH])
    return head + _table(["dataset", "items", paired["model_a"], paired["model_b"], "only A / only B passed",
                          "McNemar exact p"], rows, numeric={1, 2, 3, 5})


def _gating(gating: dict[str, Any]) -> str:
    if not gating.get("checked"):
        return ""
    regs = gating.get("regressions") or []
    out = "<h2>Gating</h2>"
    out += ("<ul>" + "".join(f"<li class='err'><code>{_e(g['case_id'])}</code>: {_e(g['message'])}</li>"
                             for g in regs) + "</ul>") if regs else \
        f"<p>No regression{(' against ' + _e(gating['baseline'])) if gating.get('baseline') else ''}.</p>"
    notes = [g for g in gating.get("notes") or [] if g.get("kind") != "paired"]
    if notes:
        out += "<ul>" + "".join(f"<li class='warn'><code>{_e(g['case_id'])}</code>: {_e(g['message'])}</li>"
                                for g in notes) + "</ul>"
    return out


def _cases(comparison: dict[str, Any]) -> str:
    rows = []
    for c in comparison["cases"]:
        ci = c.get("ci") or {}
        nj = c.get("not_judged") or 0
        rows.append([_e(c["case_id"]), _e(c["status"]) if c["status"] != "error" else "<span class='err'>error</span>",
                     fmt.count(c.get("n_items")), pct(c.get("score")), fmt.ci(ci.get("low"), ci.get("high")),
                     fmt.DASH if c["status"] == "error" else str(nj), pct(c.get("cut_off")),
                     pct(c.get("unclosed_thinking"))])
    return _table(["case", "status", "items", "score", "95% CI", "not judged", "cut off", "unclosed think"], rows,
                  numeric={2, 3, 5, 6, 7}, tall=True)


def _not_judged(summary: dict[str, Any]) -> str:
    rows = summary.get("cases") or []
    if not rows:
        return ""
    out = "<h2>Samples not judged</h2>" + _note(
        f"Out of n: they count neither for nor against the model. A case is flagged (⚠) when they reach "
        f"{pct(summary.get('flag_share'))} of its samples.")
    return out + _table(["case", "not judged", "samples", "share", "kinds"], [
        [("<span class='warn'>⚠ </span>" if r["flagged"] else "") + _e(r["case_id"]), str(r["not_judged"]),
         str(r["samples"]), pct(r["share"]), _e(", ".join(f"{k} {v}" for k, v in sorted(r["kinds"].items())))]
        for r in rows], numeric={1, 2, 3}, tall=True)


def _performance(comparison: dict[str, Any]) -> str:
    rows = []
    for c in comparison["cases"]:
        p = c.get("performance") or {}
        reused = p.get("generations_reused") or 0
        rows.append([_e(c["case_id"]), _e(p.get("device") or fmt.DASH), fmt.tokens(p),
                     fmt.speed(p), fmt.seconds(p.get("prepare_s")), fmt.seconds(p.get("load_s")),
                     _e(fmt.memory(p)), fmt.seconds(p.get("generation_s")), fmt.seconds(p.get("scoring_s")),
                     fmt.seconds(c.get("wall_s") if c["status"] != "error" else None),
                     f"{reused}/{reused + (p.get('generated') or 0)}"])
    return _table(["case", "device", "gen tokens", "tokens/s", "prepare", "load", "peak memory", "gen", "score",
                   "wall", "reused"], rows, numeric={2, 3, 4, 5, 6, 7, 8, 9, 10}, tall=True)


def _presets(comparison: dict[str, Any]) -> str:
    from .markdown import _preset_diff

    diffs = {(m, d["preset"]): d for m, rows in (comparison.get("preset_differences") or {}).items() for d in rows}
    rows = [[_e(model), _e(preset), fmt.rate(r.get("tokens_per_s")) + (f" {fmt.OVERLAP}" if r.get("overlapped_with")
                                                                     else ""), fmt.seconds(r.get("prepare_s")),
             fmt.seconds(r.get("load_s")), _e(fmt.memory(r)), pct(r.get("mean_score")),
             _e(_preset_diff(diffs.get((model, preset))))]
            for model, presets in comparison["presets_compared"].items() for preset, r in presets.items()]
    return _note("Over the datasets every preset of the model completed; score vs first preset = the difference on "
                 "the same items with its paired 95% CI (an fp8 KV cache can cost accuracy).") + \
        _table(["model", "preset", "tokens/s", "prepare", "load", "peak memory", "mean score", "score vs first preset"],
               rows, numeric={2, 3, 4, 5, 6}, tall=True)


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
