"""The stored scorer: verdicts as a wrapper around a scorer, the way the
caching engine wraps an engine.

A verdict is stored under (generation key, scorer name, scorer version):
items whose every sample has a stored verdict of this scorer version are
not scored again; the others are scored together (one sandbox pool for a
code dataset) and stored at once.  A new scorer version re-scores stored
generations without loading a model.
"""

from __future__ import annotations

from typing import Sequence

from ..items import Generation, Item, Verdict
from ..store import ResultStore
from .base import ScoreContext, Scorer
from .options import key_suffix


class StoredScorer:
    def __init__(self, scorer: Scorer, store: ResultStore, fresh: bool = False) -> None:
        self.scorer = scorer
        self.store = store
        self.fresh = fresh  # --fresh: score everything again, replacing what is stored
        self.last_figures: dict[str, int] = {}

    def score(self, items: Sequence[Item], generations: Sequence[Sequence[Generation]],
              ctx: ScoreContext) -> list[list[Verdict]]:
        """Verdicts shaped like ``generations``; ``last_figures`` says how many were reused."""
        keys = [[g.key for g in row] for row in generations]
        flat = [k for row in keys for k in row if k]
        # A verdict made under other scorer options (another reading) is another verdict.
        version = self.scorer.version + key_suffix(self.scorer, ctx.options)
        stored = {} if self.fresh else self.store.get_verdicts(flat, self.scorer.name, version)
        out: list[list[Verdict] | None] = []
        missing: list[int] = []
        for i, row in enumerate(keys):
            if row and all(k and k in stored for k in row):
                out.append([stored[k] for k in row])
            else:
                out.append(None)
                missing.append(i)
        if missing:
            fresh = self.scorer.score_generations([items[i] for i in missing], [generations[i] for i in missing], ctx)
            to_store = []
            for i, verdicts in zip(missing, fresh):
                out[i] = verdicts
                to_store += [(k, v) for k, v in zip(keys[i], verdicts) if k]
            self.store.put_verdicts(to_store, self.scorer.name, version)
        scored = sum(len(keys[i]) for i in missing)
        self.last_figures = {"verdicts_reused": sum(len(r) for r in keys) - scored, "scored": scored}
        return [v or [] for v in out]


__all__ = ["StoredScorer"]
