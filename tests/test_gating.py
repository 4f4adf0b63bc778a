"""CI gating: a baseline from reference answers fails a run whose scores
were lowered on purpose (wrong completions replayed); floors; bad baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import SHARED_DATASETS, needs_shared
from pytest_codeeval.gating import GateOptions, allowed_drop, check_case as _check
from pytest_codeeval.results import CaseResult

ARGS = ["-p", "no:cacheprovider", "--datasets", "gsm8k", "--samples", "8"]

def _case(score: float, tps: float = 100.0, low: float | None = None) -> dict:
    return {"case_id": "m-balanced-d", "model": "m", "preset": "balanced", "dataset": "d", "score": score,
            "primary_metric": "accuracy", "performance": {"tokens_per_s": tps},
            "ci": {"estimate": score, "low": score - 0.1 if low is None else low, "high": 1.0, "method": "wilson"}}

def check_case(result: dict, gate: GateOptions) -> list[dict]:
    return _check(CaseResult.from_dict(result), gate)

def _gate(base: dict | None = None, **kw) -> GateOptions:
    opts = dict(max_score_drop=None, min_score=None, max_throughput_drop=None)
    opts.update(kw)
    index = {("m", "balanced", "d"): base} if base else None
    return GateOptions(baseline=index, baseline_path="b.json", **opts)

def test_drop_within_the_baseline_ci_passes_and_beyond_fails() -> None:
    base = _case(0.8, low=0.7)
    assert allowed_drop(base, None) == pytest.approx(0.1)
    assert check_case(_case(0.75), _gate(base)) == []
    regs = check_case(_case(0.65), _gate(base))
    assert [r["kind"] for r in regs] == ["score"] and "dropped 15.0 points" in regs[0]["message"]

def test_threshold_replaces_the_ci_and_floor_and_throughput() -> None:
    base = _case(0.8, tps=100.0, low=0.5)
    assert [r["kind"] for r in check_case(_case(0.7), _gate(base, max_score_drop=0.05))] == ["score"]
    assert [r["kind"] for r in check_case(_case(0.7), _gate(min_score=0.75))] == ["floor"]
    assert check_case(_case(0.8, tps=80.0), _gate(base, max_throughput_drop=0.3)) == []
    regs = check_case(_case(0.8, tps=60.0), _gate(base, max_throughput_drop=0.3))
    assert [r["kind"] for r in regs] == ["throughput"] and "40% slower" in regs[0]["message"]

@needs_shared
def test_baseline_from_references_fails_a_run_with_wrong_answers(suite: pytest.Pytester, tmp_path: Path) -> None:
    suite._monkeypatch.setenv("CODEEVAL_DATA_DIR", str(SHARED_DATASETS))
    base_dir = tmp_path / "base"
    # The baseline: reference answers, replayed (same pseudo-model "replay" so the cases match).
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "bad.jsonl"

    rows = [json.loads(x) for x in (SHARED_DATASETS / "gsm8k" / "test.jsonl").read_text().splitlines()[:8]]
    good.write_text("".join(json.dumps({"task_id": f"gsm8k/{i}", "completion": r["answer"]}) + "\n"
                            for i, r in enumerate(rows)))
    # Lowered on purpose: half the answers are off by one.
    bad.write_text("".join(json.dumps({"task_id": f"gsm8k/{i}", "completion": r["answer"] if i % 2 else
                                       r["answer"].rsplit("####", 1)[0] + "#### 123456789"}) + "\n"
                           for i, r in enumerate(rows)))
    res = suite.runpytest_subprocess(*ARGS, f"--completions={good}", f"--report-dir={base_dir}")
    res.assert_outcomes(passed=1)
    baseline = next((base_dir / "comparisons").glob("*.json"))
    assert json.loads(baseline.read_text())["cases"][0]["score"] == 1.0

    same = suite.runpytest_subprocess(*ARGS, f"--completions={good}", f"--report-dir={tmp_path / 'same'}",
                                      f"--baseline={baseline}")
    same.assert_outcomes(passed=1)
    same.stdout.fnmatch_lines(["*codeeval gating: no regression in 1 cases*"])

    worse = suite.runpytest_subprocess(*ARGS, f"--completions={bad}", f"--report-dir={tmp_path / 'worse'}",
                                       f"--baseline={baseline}", "--junitxml", str(tmp_path / "j.xml"))
    worse.assert_outcomes(failed=1)
    assert worse.ret == 1
    worse.stdout.fnmatch_lines([
        "*codeeval gating: 1 of 1 cases regressed against*",
        "*replay-gsm8k: exact_match_strict 50.0% vs baseline 100.0%: dropped 50.0 points*",
    ])
    comp = json.loads(next((tmp_path / "worse" / "comparisons").glob("*.json")).read_text())
    assert comp["gating"]["regressions"][0]["kind"] == "score"
    assert comp["cases"][0]["status"] == "failed"

@needs_shared
def test_min_score_floor_fails_without_a_baseline(suite: pytest.Pytester, tmp_path: Path) -> None:
    suite._monkeypatch.setenv("CODEEVAL_DATA_DIR", str(SHARED_DATASETS))
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"task_id": "gsm8k/0", "completion": "no idea"}) + "\n")
    res = suite.runpytest_subprocess(*ARGS, f"--completions={empty}", f"--report-dir={tmp_path / 'r'}",
                                     "--min-score", "0.5")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*below the floor --min-score 50.0%*"])

def test_baseline_with_another_schema_version_is_a_usage_error(suite: pytest.Pytester, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema_version": 0, "cases": []}))
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine", "reference", "--datasets",
                                     "advanced_coding_extended", "--samples", "1", f"--baseline={old}",
                                     f"--report-dir={tmp_path / 'r'}")
    assert res.ret == pytest.ExitCode.USAGE_ERROR or res.ret == pytest.ExitCode.INTERRUPTED
    res.stderr.fnmatch_lines(["*schema_version 0*reads schema_version 1*Regenerate the baseline*"]) if \
        "schema_version 0" in res.stderr.str() else res.stdout.fnmatch_lines(["*schema_version 0*schema_version 1*"])
    assert not (tmp_path / "r" / "codeeval.sqlite").exists()

def test_baseline_that_is_not_json(suite: pytest.Pytester, tmp_path: Path) -> None:
    junk = tmp_path / "b.json"
    junk.write_text("{not json")
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine", "reference", "--datasets",
                                     "advanced_coding_extended", "--samples", "1", f"--baseline={junk}",
                                     f"--report-dir={tmp_path / 'r'}")
    assert res.ret != 0
    assert "is not JSON" in res.stdout.str() + res.stderr.str()
