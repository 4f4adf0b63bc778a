"""Running one case: prompts -> one batched generation -> extraction -> scoring.

The result is plain data (it crosses from xdist workers to the controller
on the test report) and holds the metrics, the performance figures and one
row per scored sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .catalog import DatasetSpec, ModelSpec
from .engines.base import Engine, SamplingConfig
from .extraction import split_reasoning
from .items import Generation, Item, Prompt, Verdict
from .prompts import build_prompt, template_hash
from .scoring import ScoreContext, Scorer, get_scorer

# Timer: runs the generation call and returns its result (pytest-benchmark's
# ``benchmark.pedantic`` or a plain call).
Timer = Callable[[Callable[[], list[list[Generation]]]], list[list[Generation]]]


def plain_timer(fn: Callable[[], list[list[Generation]]]) -> list[list[Generation]]:
    return fn()


@dataclass
class CaseInputs:
    case_id: str
    model: ModelSpec
    preset: str
    dataset: DatasetSpec
    items: Sequence[Item]
    sampling: SamplingConfig
    ks: tuple[int, ...]
    system_prompt: str | None
    categories: tuple[str, ...] = ()
    # What, besides the prompt and sampling, decides the engine's output
    # (model + revision, output-changing settings, a replay file's hash):
    # part of every stored generation's key.
    generation_identity: dict[str, Any] = field(default_factory=dict)


def run_case(
    inputs: CaseInputs, engine: Engine, timer: Timer = plain_timer, store: Any = None, fresh: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    started = time.time()
    items = list(inputs.items)
    prompts = [build_prompt(item, inputs.dataset, inputs.model, inputs.system_prompt) for item in items]
    scorer = get_scorer(inputs.dataset.scorer)
    ctx = ScoreContext(chat=inputs.model.chat, ks=inputs.ks)
    resume: dict[str, Any] = {}

    if store is None:
        t0 = time.perf_counter()
        generations = timer(lambda: engine.generate(prompts, items, inputs.sampling))
        generation_s = time.perf_counter() - t0
        _check_shape(generations, items)
        t1 = time.perf_counter()
        verdicts, splits = score_generations(items, generations, scorer, ctx)
    else:
        # Resume: only the (item, sample) pairs the store lacks go to the
        # engine, still in one batched call; each result is stored at once.
        from .store import CaseCache, generate_missing, score_missing

        cache = CaseCache(store, {**inputs.generation_identity, "sampling": inputs.sampling.to_dict()},
                          inputs.model.name, fresh)
        if progress is not None:
            progress.generating(len(items), inputs.sampling.n)
        generations, keys, figures = generate_missing(cache, engine, prompts, items, inputs.sampling, timer)
        generation_s = figures["engine_s"]
        _check_shape(generations, items)
        if progress is not None:
            progress.generated(figures, sum(x.completion_tokens for g in generations for x in g))
        t1 = time.perf_counter()
        verdicts, scored = score_missing(
            cache, items, generations, keys, scorer.name, scorer.version,
            lambda its, gens: score_generations(its, gens, scorer, ctx)[0],
        )
        splits = [[split_reasoning(g.text) for g in row] for row in generations]
        resume = {"generations_reused": figures["reused"], "generated": figures["generated"], **scored}
        if progress is not None:
            progress.scored(scored, time.perf_counter() - t1)
    metrics = scorer.aggregate(items, verdicts, ctx)
    scoring_s = time.perf_counter() - t1

    prompt_tokens = sum(g[0].prompt_tokens for g in generations if g)
    completion_tokens = sum(x.completion_tokens for g in generations for x in g)
    performance = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "generation_s": round(generation_s, 4),
        "tokens_per_s": round(completion_tokens / generation_s, 2) if generation_s > 0 else None,
        "scoring_s": round(scoring_s, 4),
        "load_s": round(engine.stats.load_seconds, 3),
        "peak_memory_bytes": engine.stats.peak_memory_bytes,
        "memory_kind": engine.stats.memory_kind,
        "device": engine.stats.device,
        **resume,
    }
    samples = sample_rows(items, prompts, generations, verdicts, splits)
    return {
        "case_id": inputs.case_id,
        "model": inputs.model.name,
        "preset": inputs.preset,
        "dataset": inputs.dataset.name,
        "task_type": inputs.dataset.task_type,
        "categories": list(inputs.categories),
        "engine": engine.describe(),
        "status": "passed",
        "n_items": len(items),
        "n_samples": inputs.sampling.n,
        "primary_metric": scorer.primary_metric,
        "score": metrics.get(scorer.primary_metric, 0.0),
        "metrics": metrics,
        "scorer": scorer.describe(),
        "prompt_template_hash": template_hash(inputs.dataset.task_type),
        "sampling": inputs.sampling.to_dict(),
        "performance": performance,
        "started_at": started,
        "wall_s": round(time.time() - started, 3),
        "samples": samples,
    }


def score_generations(
    items: Sequence[Item],
    generations: Sequence[Sequence[Generation]],
    scorer: Scorer,
    ctx: ScoreContext,
) -> tuple[list[list[Verdict]], list[list[Any]]]:
    """Split reasoning off, score what has an answer, and give an unclosed
    <think> block the verdict no_answer without asking the scorer."""
    splits = [[split_reasoning(g.text) for g in row] for row in generations]
    answers = [[s.answer for s in row] for row in splits]
    verdicts = scorer.score(items, answers, ctx)
    for i, row in enumerate(splits):
        for j, s in enumerate(row):
            if not s.complete:
                verdicts[i][j] = Verdict(
                    item_id=items[i].id, sample=j, passed=False, verdict="no_answer",
                    detail="reasoning block never closed (</think> missing): no answer",
                    scores={k: 0.0 for k in verdicts[i][j].scores},
                )
    return verdicts, splits


def sample_rows(
    items: Sequence[Item],
    prompts: Sequence[Prompt],
    generations: Sequence[Sequence[Generation]],
    verdicts: Sequence[Sequence[Verdict]],
    splits: Sequence[Sequence[Any]],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for item, prompt, gens, vs, ss in zip(items, prompts, generations, verdicts, splits):
        for g, v, s in zip(gens, vs, ss):
            rows.append({
                "task_id": item.id,
                "sample": g.sample,
                "passed": v.passed,
                "verdict": v.verdict,
                "detail": v.detail,
                "scores": v.scores,
                "prompt": prompt.render(),
                "raw_output": g.text,
                "reasoning": s.reasoning,
                "extracted": v.extracted,
                "completion_tokens": g.completion_tokens,
                "finish_reason": g.finish_reason,
            })
    return rows


def _check_shape(generations: list[list[Generation]], items: Sequence[Item]) -> None:
    if len(generations) != len(items):
        raise RuntimeError(f"engine returned {len(generations)} result lists for {len(items)} prompts")
