"""CI gating: compare a run with a baseline comparison JSON and floors.

Before anything runs, a baseline that cannot be compared is a usage error:
a case whose data (``manifest.datasets.<name>.sha256`` over the items the
baseline evaluated), prompt template, sampling or scorer (its version, or
options that change its reading) differ from this run's.

A case regresses when
- its primary score is below ``--min-score`` (an absolute floor), or
- on the items it shares with the baseline case, its score is lower by
  more than the allowed drop (``--max-score-drop``, default
  defaults.GATE_MAX_SCORE_DROP) AND a one-sided paired test finds the drop
  significant at 5%: the exact McNemar test on the items that flipped
  (pass/fail items), else a paired bootstrap.  A baseline without per-item
  scores is compared by its score alone (noted as unpaired), or
- its tokens/s fell below ``(1 - --max-throughput-drop)`` x the baseline's
  (only when both speeds were measured).

The gate also says what it cannot see: with n shared items the exact test
needs at least 5 items that flipped (and none back) to reach 5%, so it
cannot flag a drop under 5/n; when that exceeds the allowed drop the case
gets an "undetectable" note (and the terminal a warning) naming the number
of items that would do.

The check runs inside each case (so the case fails, under xdist too, and
--junitxml shows it) and the controller prints one summary of them all.
The findings (regressions and notes) are kept in ``CaseResult.gating``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import defaults, stats
from .errors import CodeevalError
from .fingerprint import dataset_sha256
from .overlap import TIMING_ADVICE
from .results import CaseResult

REGRESSIONS = ("score", "floor", "throughput")


class BaselineError(CodeevalError):
    """The baseline file cannot be compared with."""


@dataclass(frozen=True)
class GateOptions:
    baseline: dict[tuple[str, str, str], dict[str, Any]] | None  # (model, preset, dataset) -> case
    baseline_path: str | None
    max_score_drop: float | None  # None: defaults.GATE_MAX_SCORE_DROP
    min_score: float | None
    max_throughput_drop: float | None

    @property
    def active(self) -> bool:
        return self.baseline is not None or self.min_score is not None

    @property
    def allowed_drop(self) -> float:
        return defaults.GATE_MAX_SCORE_DROP if self.max_score_drop is None else self.max_score_drop


def load_baseline(path: Path) -> dict[str, Any]:
    """Read and validate a comparison JSON; a usage error names what is wrong."""
    from .report.comparison import SCHEMA_VERSION
    from .report.comparison import validate_comparison

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BaselineError(f"--baseline {path} cannot be read ({e}). Give a comparison JSON file.") from None
    except json.JSONDecodeError as e:
        raise BaselineError(f"--baseline {path} is not JSON ({e}). Give a reports/comparisons/*_comparison.json file.") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise BaselineError(f"--baseline {path} is not a pytest-codeeval comparison (no schema_version).")
    if data["schema_version"] != SCHEMA_VERSION:
        raise BaselineError(
            f"--baseline {path} has schema_version {data['schema_version']!r}; this pytest-codeeval reads "
            f"schema_version {SCHEMA_VERSION}. Regenerate the baseline with this version (rerun the baseline "
            "commit's suite) or compare with the pytest-codeeval version that wrote it."
        )
    problems = validate_comparison(data)
    if problems:
        raise BaselineError(f"--baseline {path} does not match the comparison schema: {'; '.join(problems[:3])}.")
    return data


def index_cases(comparison: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(c["model"], c["preset"], c["dataset"]): c for c in comparison["cases"]}


def gate_options(options: Any, state: Any = None) -> GateOptions:
    """The gate of a run; with the run's state, a baseline that cannot be
    compared with its selected cases is a usage error here."""
    data = load_baseline(options.baseline) if options.baseline else None
    if data is not None and state is not None:
        check_comparable(data, state, str(options.baseline))
    return GateOptions(
        baseline=index_cases(data) if data is not None else None,
        baseline_path=str(options.baseline) if options.baseline else None,
        max_score_drop=options.max_score_drop, min_score=options.min_score,
        max_throughput_drop=options.max_throughput_drop,
    )


# -- can the baseline be compared at all? ------------------------------------------------


def sampling_differences(baseline: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """The sampling settings that differ, as 'name baseline -> run'.  Settings
    only one side records (a newer version's) are not compared; the seed is
    not compared when both sides decode greedily (it changes nothing)."""
    greedy = baseline.get("temperature") == 0 and run.get("temperature") == 0
    out = []
    for key in sorted(set(baseline) & set(run)):
        if key == "seed" and greedy:
            continue
        if baseline[key] != run[key]:
            out.append(f"{key} {baseline[key]!r} -> {run[key]!r}")
    return out


def check_comparable(data: dict[str, Any], state: Any, path: str) -> None:
    """A usage error when a selected case's baseline used other data, another
    prompt template or other sampling: its scores mean something else."""
    from .prompts import template_hash

    cases = index_cases(data)
    hashes = ((data.get("manifest") or {}).get("datasets") or {})
    problems: list[str] = []
    checked: set[str] = set()
    for case in state.selected:
        base = cases.get((case.model, case.preset, case.dataset))
        if base is None:
            continue
        spec = state.catalog.dataset(case.dataset)
        if case.dataset not in checked:
            checked.add(case.dataset)
            problems += _data_problems(case.dataset, hashes.get(case.dataset), state)
        ours = template_hash(spec.task_type)
        theirs = base.get("prompt_template_hash")
        if theirs and theirs != ours:
            problems.append(f"{case.id}: the {spec.task_type} prompt template differs (baseline {theirs}, this run "
                            f"{ours})")
        requests = state.requests(case)
        differ = sampling_differences(base.get("sampling") or {}, requests[0].sampling.to_dict() if requests else {})
        if differ:
            problems.append(f"{case.id}: sampling differs ({', '.join(differ)})")
        problems += _scorer_problems(case.id, spec.scorer, base.get("scorer") or {}, state.scorer_options(case.dataset))
    if problems:
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise BaselineError(
            f"--baseline {path} cannot be compared with this run: {'; '.join(problems[:4])}{more}. Its scores "
            "mean something else: make a new baseline with this run's settings (run the baseline's commit with "
            "the same options), or run with the baseline's settings, or drop --baseline."
        )


def _scorer_problems(case_id: str, name: str, base: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """Another scorer version, or options that change its reading, give the same replies other verdicts."""
    from .registry import SCORERS
    from .scoring.options import changed

    if base.get("name") != name:
        return []  # a baseline without scorer details (or another scorer: the dataset's hash says the rest)
    scorer = SCORERS.get(name)
    out = []
    if base.get("version") and str(base["version"]) != str(scorer.version):
        out.append(f"{case_id}: the {name} scorer changed (version {base['version']} -> {scorer.version})")
    theirs, ours = changed(scorer, base.get("options") or {}), changed(scorer, options)
    if theirs != ours:
        out.append(f"{case_id}: scorer options differ ({theirs or 'defaults'} -> {ours or 'defaults'})")
    return out


def _data_problems(dataset: str, entry: Any, state: Any) -> list[str]:
    """The baseline's data hash against this run's items (the same first n
    items: a run with another --samples is still comparable on the shared
    ones).  A baseline without the hash (older versions) is not checked."""
    if not isinstance(entry, dict) or not entry.get("sha256"):
        return []
    n = entry.get("n_items")
    items = state.all_items(dataset)
    if isinstance(n, int) and n > len(items):
        return [f"dataset {dataset}: the baseline evaluated {n} items, this run's copy has {len(items)}"]
    ours = dataset_sha256(items[:n] if isinstance(n, int) else state.items(dataset))  # as the manifest hashes
    if ours != entry["sha256"]:
        return [f"dataset {dataset}: other data (sha256 of the baseline's {n} items {entry['sha256'][:12]}…, this "
                f"run's {ours[:12]}…)"]
    return []


# -- one case ---------------------------------------------------------------------------------


def check_case(result: CaseResult, gate: GateOptions, shared_timing: bool = False) -> list[dict[str, Any]]:
    """The gate's findings for one case: regressions (``regression`` true:
    the case fails) and notes (what the gate compared, what it cannot see).
    ``shared_timing``: other engines may have generated on this case's
    devices at the same time (xdist workers sharing the CPU): no throughput gate."""
    out: list[dict[str, Any]] = []
    score = result.score
    cid = result.case_id
    metric = result.primary_metric or "score"
    if score is None:
        return out
    if gate.min_score is not None and score < gate.min_score:
        out.append(_finding(cid, "floor", True, f"{metric} {100 * score:.1f}% is below the floor --min-score "
                            f"{100 * gate.min_score:.1f}%", score=score, limit=gate.min_score))
    if gate.baseline is None:
        return out
    base = gate.baseline.get((result.model, result.preset, result.dataset))
    if base is None or base.get("score") is None:
        out.append(_finding(cid, "no_baseline", False, "the baseline has no completed case to compare with"))
        return out
    base_items = base.get("item_scores") or {}
    shared = [i for i in result.item_scores if i in base_items]
    if shared:
        out += _paired_score(result, base, base_items, shared, gate.allowed_drop, metric)
    else:
        out += _unpaired_score(result, base, gate.allowed_drop, metric, reason="the baseline has no per-item scores"
                               if not base_items else "the baseline shares no item with this run")
    if gate.max_throughput_drop is not None:
        now = result.performance.tokens_per_s
        before = (base.get("performance") or {}).get("tokens_per_s")
        shared = shared_timing or (base.get("performance") or {}).get("overlapped_with")
        if shared and now is not None and before:
            out.append(_finding(cid, "throughput_not_gated", False,
                                "throughput not gated: " + ("the baseline's" if not shared_timing else "this run's") +
                                " speed was measured while another engine loaded or generated on the same devices; " +
                                TIMING_ADVICE))
        elif now is not None and before:
            floor = (1.0 - gate.max_throughput_drop) * before
            if now < floor:
                out.append(_finding(cid, "throughput", True,
                                    f"throughput {now:.1f} tokens/s vs baseline {before:.1f}: "
                                    f"{100 * (1 - now / before):.0f}% slower (allowed "
                                    f"{100 * gate.max_throughput_drop:.0f}%)",
                                    tokens_per_s=now, baseline=before, limit=gate.max_throughput_drop))
    return out


def _paired_score(result: CaseResult, base: dict[str, Any], base_items: dict[str, float], shared: list[str],
                  allowed: float, metric: str) -> list[dict[str, Any]]:
    cid = result.case_id
    before = [float(base_items[i]) for i in shared]
    now = [float(result.item_scores[i]) for i in shared]
    test = stats.drop_test(before, now)
    b_mean, n_mean = sum(before) / len(before), sum(now) / len(now)
    flips = f", {test.worse} item(s) pass→fail, {test.better} fail→pass" if test.worse is not None else ""
    figures = (f"{metric} on the {test.n_items} items shared with the baseline: {100 * n_mean:.1f}% vs "
               f"{100 * b_mean:.1f}% ({-100 * test.drop:+.1f} points{flips}; one-sided {test.method} "
               f"p = {test.p_value:.3g})")
    out = [_finding(cid, "paired", False, figures, **test.to_dict(), allowed=allowed)]
    if test.drop > allowed + 1e-12 and test.significant:
        out.append(_finding(cid, "score", True, f"{figures}: dropped {100 * test.drop:.1f} points, more than the "
                            f"allowed {100 * allowed:.1f}, and significantly", score=result.score,
                            baseline=base["score"], limit=allowed))
    smallest = stats.min_detectable_drop(test.n_items)
    if smallest is None or (allowed > 0 and smallest > allowed + 1e-12):
        can = ("cannot flag any drop (at least 5 items must flip from pass to fail)" if smallest is None
               else f"can flag only a drop of {100 * smallest:.0f} points or more")
        went = (f"; this run's drop of {100 * test.drop:.1f} points went through unflagged"
                if test.drop > allowed + 1e-12 and not test.significant else "")
        need = f"; detecting a {100 * allowed:.0f}-point drop needs at least {stats.items_to_detect(allowed)} items " \
               "(--samples)" if allowed > 0 else "; use at least 5 items (--samples)"
        out.append(_finding(cid, "undetectable", False,
                            f"with {test.n_items} shared items the paired test {can}, above the allowed "
                            f"{100 * allowed:.1f} points{went}{need}", n_items=test.n_items, smallest=smallest,
                            allowed=allowed))
    return out


def _unpaired_score(result: CaseResult, base: dict[str, Any], allowed: float, metric: str,
                    reason: str) -> list[dict[str, Any]]:
    cid = result.case_id
    drop = float(base["score"]) - float(result.score or 0.0)
    out = [_finding(cid, "unpaired", False, f"compared by score alone: {reason}", allowed=allowed)]
    if drop > allowed + 1e-12:
        out.append(_finding(cid, "score", True, f"{metric} {100 * (result.score or 0.0):.1f}% vs baseline "
                            f"{100 * base['score']:.1f}%: dropped {100 * drop:.1f} points (allowed {100 * allowed:.1f}; "
                            f"unpaired: {reason})", score=result.score, baseline=base["score"], limit=allowed))
    return out


def _finding(case_id: str, kind: str, regression: bool, message: str, **figures: Any) -> dict[str, Any]:
    return {"case_id": case_id, "kind": kind, "regression": regression, "message": message, **figures}


def apply(result: CaseResult, gate: GateOptions, shared_timing: bool = False) -> list[dict[str, Any]]:
    """Gate one case: its findings go into ``result.gating``; returns the regressions."""
    findings = check_case(result, gate, shared_timing)
    result.gating = findings
    return [f for f in findings if f["regression"]]


def failure_message(regressions: list[dict[str, Any]]) -> str:
    return "codeeval gating: " + "; ".join(r["message"] for r in regressions)


def summary_lines(results: list[CaseResult], gate_baseline: str | None) -> list[str]:
    """The terminal summary: what regressed (one line each), then what the gate could not see."""
    checked = [res for res in results if res.gating is not None]
    if not checked:
        return []
    findings = [f for res in checked for f in res.gating or []]
    regs = [f for f in findings if f.get("regression", f.get("kind") in REGRESSIONS)]
    against = f" against {gate_baseline}" if gate_baseline else ""
    if regs:
        cases = {r["case_id"] for r in regs}
        lines = [f"codeeval gating: {len(cases)} of {len(checked)} cases regressed{against}:"]
        lines += [f"  {r['case_id']}: {r['message']}" for r in regs]
    else:
        lines = [f"codeeval gating: no regression in {len(checked)} cases{against}"]
    blind = [f for f in findings if f.get("kind") == "undetectable"]
    if blind:
        worst = min(blind, key=lambda f: f["n_items"])
        lines.append(f"WARNING: in {len(blind)} case(s) the sample is too small to detect the allowed drop; "
                     f"e.g. {worst['case_id']}: {worst['message']}")
    for kind, what in (("unpaired", "compared by score alone (no per-item scores to pair)"),
                       ("no_baseline", "not in the baseline")):
        ids = [f["case_id"] for f in findings if f.get("kind") == kind]
        if ids:
            lines.append(f"note: {len(ids)} case(s) {what}: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
    return lines
