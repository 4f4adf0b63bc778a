"""Running one case: its requests -> the (caching) engine -> the (stored)
scorer -> a typed CaseResult.

There is one path: the engine and the scorer are wrapped by the store
(engines/cached.py, scoring/stored.py), so a first run, a resumed run and a
re-scoring differ only in what the wrappers find.  With one submission per
model (the engine fixture asks for every case of its model at once), a
case's ``generate`` finds its samples already made, and it reports their
share of that joint call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .catalog import DatasetSpec, ModelSpec
from .engines.base import Request
from .engines.cached import CachingEngine
from .items import Generation, Item, Verdict
from .placement import device_ids
from .prompts import template_hash
from .results import NOT_JUDGED, CaseResult, Performance, SampleRow
from .scoring.base import ScoreContext, reasoning_splits
from .scoring.stored import StoredScorer
from .textsafe import safe_text


@dataclass
class CaseInputs:
    case_id: str
    model: ModelSpec
    preset: str
    dataset: DatasetSpec
    requests: Sequence[Request]  # one per item, in item order
    ks: tuple[int, ...]
    categories: tuple[str, ...] = ()
    scorer_options: dict[str, Any] = field(default_factory=dict)

    @property
    def items(self) -> list[Item]:
        return [r.item for r in self.requests]


def run_case(inputs: CaseInputs, engine: CachingEngine, scorer: StoredScorer) -> CaseResult:
    started = time.time()
    items = inputs.items
    generations = engine.generate(inputs.requests)
    if len(generations) != len(items):
        raise RuntimeError(f"engine returned {len(generations)} result lists for {len(items)} prompts")
    t0 = time.perf_counter()
    ctx = ScoreContext(chat=inputs.model.chat, ks=inputs.ks, options=dict(inputs.scorer_options))
    verdicts = scorer.score(items, generations, ctx)
    judge = scorer.scorer
    metrics = judge.aggregate(items, verdicts, ctx)
    scoring_s = time.perf_counter() - t0
    flat = [v for row in verdicts for v in row]
    gens = [g for row in generations for g in row]
    splits = [s for row in reasoning_splits(generations) for s in row]
    counts: dict[str, int] = {}
    for v in flat:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    return CaseResult(
        case_id=inputs.case_id,
        model=inputs.model.name,
        preset=inputs.preset,
        dataset=inputs.dataset.name,
        task_type=inputs.dataset.task_type,
        categories=list(inputs.categories),
        status="passed",
        n_items=len(items),
        n_samples=max((r.sampling.n for r in inputs.requests), default=1),
        primary_metric=judge.primary_metric,
        score=metrics.get(judge.primary_metric, 0.0),
        metrics=metrics,
        item_scores=judge.item_scores(items, verdicts, ctx),
        verdicts=dict(sorted(counts.items())),
        not_judged=sum(v.verdict in NOT_JUDGED for v in flat),
        cut_off=sum(g.finish_reason == "length" for g in gens) / len(gens) if gens else None,
        unclosed_thinking=sum(not s.complete for s in splits) / len(splits) if splits else None,
        scorer={**judge.describe(), **({"options": dict(ctx.options)} if ctx.options else {})},
        prompt_template_hash=template_hash(inputs.dataset.task_type),
        sampling=inputs.requests[0].sampling.to_dict() if inputs.requests else {},
        engine=engine.describe(),
        performance=case_performance(generations, engine, scoring_s, scorer.last_figures),
        started_at=started,
        wall_s=round(time.time() - started, 3),
        samples=sample_rows(inputs.requests, generations, verdicts),
    )


def case_performance(generations: Sequence[Sequence[Generation]], engine: CachingEngine, scoring_s: float,
                     scored: dict[str, int]) -> Performance:
    """A case's share of the engine calls that made its samples, whenever they were made."""
    gens = [g for row in generations for g in row]
    calls = engine.store.get_calls({g.call_id for g in gens})
    timed = bool(calls) and all(c.tokens_per_s is not None for c in calls.values())
    made = sum(c.conditions.get("engine_completion_tokens") or c.completion_tokens for c in calls.values())
    wall = busy_seconds([(c.started_at, c.wall_s) for c in calls.values()])
    loaded_here = engine.loaded
    peaks = [c.conditions.get("peak_memory_bytes") for c in calls.values() if c.conditions.get("peak_memory_bytes")]
    devices = {c.conditions.get("device") for c in calls.values()} - {None}
    kinds = {c.conditions.get("memory_kind") for c in calls.values()} - {None}
    generated = sum(g.call_id in engine.calls_made for g in gens)
    here = [c for cid, c in calls.items() if cid in engine.calls_made]
    hosts = {c.conditions.get("host") for c in calls.values()} - {None}
    nodes = sorted({c.conditions.get("node") for c in calls.values()} - {None})
    return Performance(
        prompt_tokens=sum(row[0].prompt_tokens for row in generations if row),
        completion_tokens=sum(g.completion_tokens for g in gens),
        generation_s=round(sum(g.seconds for g in gens), 4) if timed else None,
        tokens_per_s=round(made / wall, 2) if timed and wall > 0 else None,
        scoring_s=round(scoring_s, 4),
        load_s=round(engine.stats.load_seconds, 3) if loaded_here and engine.measures_speed else None,
        prepare_s=(round(engine.stats.prepare_seconds, 3)
                   if loaded_here and engine.stats.prepare_seconds is not None else None),
        peak_memory_bytes=max(peaks) if peaks else None,
        memory_kind=next(iter(kinds)) if len(kinds) == 1 else None,
        device=", ".join(sorted(devices)) if devices else None,
        devices=device_ids(sorted({d for c in calls.values() for d in c.conditions.get("devices") or ()},
                                  key=lambda d: (len(d), d))) or None,
        host=next(iter(hosts)) if len(hosts) == 1 else None,
        node=", ".join(nodes) or None,
        windows=busy_windows(here, engine.stats.load_window if loaded_here else None),
        generated=generated,
        generations_reused=len(gens) - generated,
        verdicts_reused=scored.get("verdicts_reused", 0),
        scored=scored.get("scored", 0),
    )


def busy_windows(calls: Sequence[Any], load_window: Sequence[float] | None) -> list[list[float]] | None:
    """When the case's engine kept its devices busy in this run: the calls that made
    its samples and, where it loaded here, its load (a preset compiling on one xdist
    worker slowed the other worker's generation fourfold; overlap.py reads these)."""
    windows = [[round(c.started_at, 3), round(c.started_at + c.wall_s, 3)] for c in calls]
    if windows and load_window:
        windows.insert(0, [round(load_window[0], 3), round(load_window[1], 3)])
    return windows or None


def busy_seconds(calls: Sequence[tuple[float, float]]) -> float:
    """Seconds during which at least one of the calls (start, wall) ran: calls of replicas that ran
    at once (Ray, cluster/) count once, so tokens/s is the engine's, not one replica's."""
    total, end = 0.0, float("-inf")
    for start, wall in sorted(calls):
        stop = start + wall
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def sample_rows(requests: Sequence[Request], generations: Sequence[Sequence[Generation]],
                verdicts: Sequence[Sequence[Verdict]]) -> list[SampleRow]:
    rows: list[SampleRow] = []
    for req, gens, vs, splits in zip(requests, generations, verdicts, reasoning_splits(generations)):
        for g, v, s in zip(gens, vs, splits):
            rows.append(SampleRow(
                task_id=req.item.id, sample=g.sample, passed=v.passed, verdict=v.verdict,
                detail=safe_text(v.detail), scores=v.scores, prompt=safe_text(req.prompt.render()),
                raw_output=safe_text(g.text), reasoning=safe_text(s.reasoning) if s.reasoning else None,
                extracted=safe_text(v.extracted) if v.extracted is not None else None,
                completion_tokens=g.completion_tokens, finish_reason=g.finish_reason,
            ))
    return rows


__all__ = ["CaseInputs", "run_case", "case_performance", "sample_rows"]
