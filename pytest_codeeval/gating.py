"""CI gating: compare a run with a baseline comparison JSON and floors.

A case regresses when
- its primary score is below ``--min-score`` (an absolute floor), or
- its score dropped below the baseline's by more than the allowed drop: the
  baseline case's confidence interval (score - CI low) by default, or
  ``--max-score-drop`` when given, or
- its tokens/s fell below ``(1 - --max-throughput-drop)`` x the baseline's.

The check runs inside each case (so the case fails, under xdist too, and
--junitxml shows it) and the controller prints one summary of them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CodeevalError
from .results import CaseResult


class BaselineError(CodeevalError):
    """The baseline file cannot be compared with."""


@dataclass(frozen=True)
class GateOptions:
    baseline: dict[tuple[str, str, str], dict[str, Any]] | None  # (model, preset, dataset) -> case
    baseline_path: str | None
    max_score_drop: float | None
    min_score: float | None
    max_throughput_drop: float | None

    @property
    def active(self) -> bool:
        return self.baseline is not None or self.min_score is not None


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


def gate_options(options: Any) -> GateOptions:
    baseline = index_cases(load_baseline(options.baseline)) if options.baseline else None
    return GateOptions(
        baseline=baseline, baseline_path=str(options.baseline) if options.baseline else None,
        max_score_drop=options.max_score_drop, min_score=options.min_score,
        max_throughput_drop=options.max_throughput_drop,
    )


def allowed_drop(base: dict[str, Any], max_score_drop: float | None) -> float:
    """The drop a case may show before it counts as a regression."""
    if max_score_drop is not None:
        return max_score_drop
    ci = base.get("ci") or {}
    low = ci.get("low")
    if low is None or base.get("score") is None:
        return 0.0
    return max(0.0, float(base["score"]) - float(low))


def check_case(result: CaseResult, gate: GateOptions) -> list[dict[str, Any]]:
    """Regressions of one case result (empty when it passes every gate)."""
    out: list[dict[str, Any]] = []
    score = result.score
    cid = result.case_id
    metric = result.primary_metric or "score"
    if score is None:
        return out
    if gate.min_score is not None and score < gate.min_score:
        out.append({"case_id": cid, "kind": "floor", "score": score, "limit": gate.min_score,
                    "message": f"{metric} {100 * score:.1f}% is below the floor --min-score {100 * gate.min_score:.1f}%"})
    base = (gate.baseline or {}).get((result.model, result.preset, result.dataset))
    if base is None or base.get("score") is None:
        return out
    drop = float(base["score"]) - float(score)
    allowed = allowed_drop(base, gate.max_score_drop)
    if drop > allowed + 1e-12:
        why = f"--max-score-drop {100 * allowed:.1f} points" if gate.max_score_drop is not None \
            else f"the baseline's 95% CI allows {100 * allowed:.1f} points"
        out.append({"case_id": cid, "kind": "score", "score": score, "baseline": base["score"], "limit": allowed,
                    "message": f"{metric} {100 * score:.1f}% vs baseline {100 * base['score']:.1f}%: "
                               f"dropped {100 * drop:.1f} points ({why})"})
    if gate.max_throughput_drop is not None:
        now = result.performance.tokens_per_s
        before = (base.get("performance") or {}).get("tokens_per_s")
        if now is not None and before:
            floor = (1.0 - gate.max_throughput_drop) * before
            if now < floor:
                out.append({"case_id": cid, "kind": "throughput", "tokens_per_s": now, "baseline": before,
                            "limit": gate.max_throughput_drop,
                            "message": f"throughput {now:.1f} tokens/s vs baseline {before:.1f}: "
                                       f"{100 * (1 - now / before):.0f}% slower (allowed "
                                       f"{100 * gate.max_throughput_drop:.0f}%)"})
    return out


def failure_message(regressions: list[dict[str, Any]]) -> str:
    return "codeeval gating: " + "; ".join(r["message"] for r in regressions)


def summary_lines(results: list[CaseResult], gate_baseline: str | None) -> list[str]:
    """The terminal summary: what regressed, one line per regression."""
    regs = [r for res in results for r in res.gating or []]
    checked = [res for res in results if res.gating is not None]
    if not checked:
        return []
    against = f" against {gate_baseline}" if gate_baseline else ""
    if not regs:
        return [f"codeeval gating: no regression in {len(checked)} cases{against}"]
    cases = {r["case_id"] for r in regs}
    lines = [f"codeeval gating: {len(cases)} of {len(checked)} cases regressed{against}:"]
    lines += [f"  {r['case_id']}: {r['message']}" for r in regs]
    return lines
