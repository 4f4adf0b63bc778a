"""GSM8K scoring: lm-evaluation-harness's gsm8k task, filters and metric.

Two filters, as in lm-eval's gsm8k.yaml (regexes in extraction.py, verbatim):

- strict-match: the first ``#### N`` in the reply;
- flexible-extract: the last number-looking run in the reply.

Each extracted string and the target (the dataset's full answer text) are
normalised by lm-eval's exact_match settings: the regexes ``,``, ``\\$``,
``(?s).*#### `` and ``\\.$`` are deleted in that order, then both are
lower-cased (ignore_case true, ignore_punctuation false), and compared for
equality.  A reply where a filter finds nothing gets lm-eval's fallback
"[invalid]", which never equals a target.

Primary metric: ``exact_match_strict``.  Every prompt we send asks for the
final answer on a ``#### N`` line (the instruct template says so, the base
template shows it in five examples), so strict-match measures the task as
posed, and it cannot be satisfied by accident: flexible-extract takes the
last number anywhere, so a reply that trails off with an intermediate
value that happens to equal the answer counts, and a right answer followed
by any other number (a check, a unit, a footnote) does not.
``exact_match_flexible`` is reported next to it; the gap between the two is
the share of replies with the right number in the wrong format.
"""

from __future__ import annotations

import re
from typing import Sequence

from ..extraction import final_answer_flexible, final_answer_strict
from ..items import Item, Verdict
from .. import metrics as m
from .base import ScoreContext, Scorer

# lm-eval gsm8k.yaml metric_list[0].regexes_to_ignore, in order.
REGEXES_TO_IGNORE: tuple[str, ...] = (",", r"\$", r"(?s).*#### ", r"\.$")
INVALID = "[invalid]"  # lm-eval RegexFilter's fallback

STRICT = "exact_match_strict"
FLEXIBLE = "exact_match_flexible"


def normalise(text: str) -> str:
    """lm-eval's exact_match preprocessing with gsm8k's settings."""
    for pattern in REGEXES_TO_IGNORE:
        text = re.sub(pattern, "", text)
    return text.lower()


def extract(answer: str) -> tuple[str, str]:
    """(strict, flexible) extractions as lm-eval's filters return them."""
    strict = final_answer_strict(answer)
    flexible = final_answer_flexible(answer)
    return (strict.strip() if strict is not None else INVALID,
            flexible.strip() if flexible is not None else INVALID)


class Gsm8kScorer(Scorer):
    name = "gsm8k"
    version = "1"
    # Both exact-match means over all samples (lm-eval: mean over docs; with
    # one sample per item the two agree).
    metrics = (m.mean(STRICT), m.mean(FLEXIBLE))
    primary_metric = STRICT

    def score(
        self, items: Sequence[Item], answers: Sequence[Sequence[str]], ctx: ScoreContext
    ) -> list[list[Verdict]]:
        out: list[list[Verdict]] = []
        for item, samples in zip(items, answers):
            target = normalise(item.reference)
            out.append([self._judge(item, j, text, target) for j, text in enumerate(samples)])
        return out

    def _judge(self, item: Item, sample: int, text: str, target: str) -> Verdict:
        strict, flexible = extract(text)
        strict_ok = strict != INVALID and normalise(strict) == target
        flexible_ok = flexible != INVALID and normalise(flexible) == target
        if strict_ok:
            verdict, detail = "passed", ""
        elif strict == INVALID:
            # No "#### N" line: for the primary metric there is no answer.
            verdict = "no_answer"
            if flexible == INVALID:
                detail = "no '#### N' line and no number in the reply"
            elif flexible_ok:
                detail = f"no '#### N' line; the last number {flexible!r} is right (flexible match only)"
            else:
                detail = f"no '#### N' line; the last number is {flexible!r}, expected {target!r}"
        else:
            verdict, detail = "failed", f"'#### {strict}' but the answer is {target!r}"
        return Verdict(
            item_id=item.id,
            sample=sample,
            passed=strict_ok,
            verdict=verdict,
            detail=detail,
            scores={STRICT: float(strict_ok), FLEXIBLE: float(flexible_ok)},
            # What the primary filter read, else the flexible one; None: no number at all.
            extracted=strict if strict != INVALID else (flexible if flexible != INVALID else None),
        )
