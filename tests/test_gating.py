"""CI gating: per-item verdicts compared with the baseline's on the shared
items (a one-sided paired test), floors, throughput; a baseline of other
data, prompts or sampling refused before anything runs; a sample too small
to detect the allowed drop said out loud; bad baseline files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import SHARED_DATASETS, needs_shared
from pytest_codeeval.gating import GateOptions, check_case as _check, sampling_differences, summary_lines
from pytest_codeeval.results import CaseResult

ARGS = ["-p", "no:cacheprovider", "--datasets", "gsm8k", "--samples", "12"]


def _case(passed: list[int] | float, tps: float | None = 100.0, ids: range | None = None, **extra) -> dict:
    """A case dict; ``passed``: per-item 0/1 outcomes (item ids d/0, d/1, ...) or a bare score."""
    if isinstance(passed, list):
        ids = ids if ids is not None else range(len(passed))
        items = {f"d/{i}": float(p) for i, p in zip(ids, passed)}
        score = sum(passed) / len(passed)
    else:
        items, score = {}, passed
    return {"case_id": "m-d", "model": "m", "preset": "balanced", "dataset": "d", "score": score,
            "primary_metric": "accuracy", "performance": {"tokens_per_s": tps}, "item_scores": items, **extra}


def check_case(result: dict, gate: GateOptions) -> list[dict]:
    return _check(CaseResult.from_dict(result), gate)


def _gate(base: dict | None = None, **kw) -> GateOptions:
    opts = dict(max_score_drop=None, min_score=None, max_throughput_drop=None)
    opts.update(kw)
    index = {("m", "balanced", "d"): base} if base else None
    return GateOptions(baseline=index, baseline_path="b.json", **opts)


def _kinds(findings: list[dict], regression: bool | None = None) -> list[str]:
    return [f["kind"] for f in findings if regression is None or f["regression"] is regression]


def test_a_significant_drop_on_shared_items_fails_and_noise_passes() -> None:
    base = _case([1] * 30 + [0] * 10)
    ten_flipped = _case([0] * 10 + [1] * 20 + [0] * 10)  # 10 items pass -> fail: 25 points, p = 0.5^10
    regs = [f for f in check_case(ten_flipped, _gate(base)) if f["regression"]]
    assert _kinds(regs) == ["score"]
    assert "on the 40 items shared with the baseline" in regs[0]["message"]
    assert "10 item(s) pass→fail" in regs[0]["message"] and "dropped 25.0 points" in regs[0]["message"]
    two_flipped = _case([0] * 2 + [1] * 28 + [0] * 10)  # 5 points, p = 0.25: noise
    findings = check_case(two_flipped, _gate(base))
    assert _kinds(findings, regression=True) == []
    paired = next(f for f in findings if f["kind"] == "paired")
    assert paired["worse"] == 2 and paired["better"] == 0 and paired["p_value"] == pytest.approx(0.25)


def test_verdicts_are_paired_item_by_item_not_compared_as_totals() -> None:
    """Same overall score, but the 10 items the baseline passed now fail: the
    unpaired comparison of totals (the old gate) saw no drop at all."""
    base = _case([1] * 10 + [0] * 10)  # items 0..19
    run = _case([0] * 20 + [1] * 20, ids=range(40))  # --samples 40: items 0..39, same 50% overall
    assert run["score"] == base["score"]
    regs = [f for f in check_case(run, _gate(base)) if f["regression"]]
    assert _kinds(regs) == ["score"] and "on the 20 items shared" in regs[0]["message"]


def test_the_allowed_drop_is_the_threshold_and_significance_is_still_required() -> None:
    base = _case([1] * 80 + [0] * 20)
    run = _case([0] * 8 + [1] * 72 + [0] * 20)  # 8 flips: 8 points, p = 0.0039
    assert _kinds(check_case(run, _gate(base)), regression=True) == ["score"]  # default: 5 points
    assert _kinds(check_case(run, _gate(base, max_score_drop=0.1)), regression=True) == []


def test_at_five_samples_the_gate_says_it_cannot_see_the_drop_it_let_through() -> None:
    """The issue's case: a 5/5 baseline let 3/5 through without a word."""
    findings = check_case(_case([1, 1, 1, 0, 0]), _gate(_case([1] * 5)))
    assert _kinds(findings, regression=True) == []
    note = next(f for f in findings if f["kind"] == "undetectable")
    assert "with 5 shared items the paired test can flag only a drop of 100 points or more" in note["message"]
    assert "this run's drop of 40.0 points went through unflagged" in note["message"]
    assert "at least 100 items" in note["message"]
    res = CaseResult.from_dict(_case([1, 1, 1, 0, 0]))
    res.gating = findings
    lines = summary_lines([res], "b.json")
    assert lines[0] == "codeeval gating: no regression in 1 cases against b.json"
    assert lines[1].startswith("WARNING: in 1 case(s) the sample is too small to detect the allowed drop")
    # Under 5 shared items no drop can ever be flagged.
    few = check_case(_case([0, 0, 0]), _gate(_case([1] * 3)))
    assert "cannot flag any drop" in next(f for f in few if f["kind"] == "undetectable")["message"]
    # With enough items the note goes away.
    big = check_case(_case([1] * 200), _gate(_case([1] * 200)))
    assert "undetectable" not in _kinds(big)


def test_a_baseline_without_item_scores_is_compared_by_score_and_says_so() -> None:
    base = _case(0.9)
    findings = check_case(_case(0.8), _gate(base))
    assert _kinds(findings) == ["unpaired", "score"] and "unpaired" in findings[1]["message"]
    assert _kinds(check_case(_case(0.88), _gate(base)), regression=True) == []


def test_floor_and_throughput() -> None:
    base = _case([1] * 10, tps=100.0)
    assert _kinds(check_case(_case([1] * 5 + [0] * 5), _gate(min_score=0.75))) == ["floor"]
    assert _kinds(check_case(_case([1] * 10, tps=80.0), _gate(base, max_throughput_drop=0.3)), True) == []
    regs = [f for f in check_case(_case([1] * 10, tps=60.0), _gate(base, max_throughput_drop=0.3)) if f["regression"]]
    assert _kinds(regs) == ["throughput"] and "40% slower" in regs[0]["message"]
    # No speed measured on one side (a model-free engine): nothing to compare, nothing fails.
    assert _kinds(check_case(_case([1] * 10, tps=None), _gate(base, max_throughput_drop=0.3)), True) == []


def test_sampling_differences_name_each_setting() -> None:
    base = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 512, "n": 1, "seed": 1}
    assert sampling_differences(base, {**base, "seed": 2}) == []  # greedy: the seed changes nothing
    assert sampling_differences(base, {**base, "max_new_tokens": 100}) == ["max_new_tokens 512 -> 100"]
    assert sampling_differences(base, {**base, "top_k": 20}) == []  # a setting only one side knows
    hot = {**base, "temperature": 0.8}
    assert sampling_differences(hot, {**hot, "seed": 2}) == ["seed 1 -> 2"]


# -- end to end -------------------------------------------------------------------------------------


def _completions(tmp_path: Path, name: str, wrong: set[int], n: int = 12) -> Path:
    rows = [json.loads(x) for x in (SHARED_DATASETS / "gsm8k" / "test.jsonl").read_text().splitlines()[:n]]
    path = tmp_path / name
    path.write_text("".join(json.dumps({"task_id": f"gsm8k/{i}", "completion": r["answer"] if i not in wrong else
                                        r["answer"].rsplit("####", 1)[0] + "#### 123456789"}) + "\n"
                            for i, r in enumerate(rows)))
    return path


@pytest.fixture
def baseline(suite: pytest.Pytester, tmp_path: Path) -> Path:
    """A baseline from reference answers, replayed (pseudo-model "replay", so the cases match)."""
    suite._monkeypatch.setenv("CODEEVAL_DATA_DIR", str(SHARED_DATASETS))
    res = suite.runpytest_subprocess(*ARGS, f"--completions={_completions(tmp_path, 'good.jsonl', set())}",
                                     f"--report-dir={tmp_path / 'base'}")
    res.assert_outcomes(passed=1)
    path = next((tmp_path / "base" / "comparisons").glob("*.json"))
    data = json.loads(path.read_text())
    assert data["cases"][0]["score"] == 1.0 and data["manifest"]["datasets"]["gsm8k"]["n_items"] == 12
    return path


@needs_shared
def test_baseline_from_references_fails_a_run_with_wrong_answers(suite: pytest.Pytester, tmp_path: Path,
                                                                  baseline: Path) -> None:
    good = _completions(tmp_path, "good.jsonl", set())
    same = suite.runpytest_subprocess(*ARGS, f"--completions={good}", f"--report-dir={tmp_path / 'same'}",
                                      f"--baseline={baseline}")
    same.assert_outcomes(passed=1)
    same.stdout.fnmatch_lines(["*codeeval gating: no regression in 1 cases*"])

    bad = _completions(tmp_path, "bad.jsonl", set(range(0, 12, 2)))  # 6 of 12 wrong: p = 0.5^6
    worse = suite.runpytest_subprocess(*ARGS, f"--completions={bad}", f"--report-dir={tmp_path / 'worse'}",
                                       f"--baseline={baseline}", "--junitxml", str(tmp_path / "j.xml"))
    worse.assert_outcomes(failed=1)
    assert worse.ret == 1
    worse.stdout.fnmatch_lines([
        "*codeeval gating: 1 of 1 cases regressed against*",
        "*replay-gsm8k: exact_match_strict on the 12 items shared with the baseline: 50.0% vs 100.0%*"
        "6 item(s) pass→fail*dropped 50.0 points*",
    ])
    comp = json.loads(next((tmp_path / "worse" / "comparisons").glob("*.json")).read_text())
    assert comp["gating"]["regressions"][0]["kind"] == "score"
    assert [n["kind"] for n in comp["gating"]["notes"]] == ["paired", "undetectable"]  # 12 items: 42 points at best
    assert comp["cases"][0]["status"] == "failed"
    md = next((tmp_path / "worse" / "markdown").glob("*.md")).read_text()
    assert "**regressed** `replay-gsm8k`" in md


@needs_shared
def test_a_smaller_run_is_compared_on_the_items_it_shares_and_warns(suite: pytest.Pytester, tmp_path: Path,
                                                                    baseline: Path) -> None:
    """--samples 5 against a 12-item baseline: the same data (the baseline's
    hash covers the first 12 items), 2 of 5 wrong, let through with a warning."""
    bad = _completions(tmp_path, "bad.jsonl", {0, 1})
    res = suite.runpytest_subprocess(*ARGS[:-1], "5", f"--completions={bad}", f"--report-dir={tmp_path / 'r'}",
                                     f"--baseline={baseline}")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*no regression in 1 cases*",
                              "*WARNING: in 1 case(s) the sample is too small*5 shared items*can flag only a drop "
                              "of 100 points*drop of 40.0 points went through unflagged*"])


@needs_shared
@pytest.mark.parametrize(("change", "args", "expected"), [
    ("sampling", ["--max-new-tokens", "100"], "*replay-gsm8k: sampling differs (max_new_tokens * -> 100)*"),
    ("data", [], "*dataset gsm8k: other data (sha256 of the baseline's 12 items 000000000000…*"),
    ("prompt", [], "*replay-gsm8k: the math prompt template differs (baseline 0123456789abcdef*"),
    ("scorer", [], "*replay-gsm8k: the gsm8k scorer changed (version 0 -> 1)*"),
])
def test_a_baseline_of_other_data_prompts_or_sampling_is_refused(
        suite: pytest.Pytester, tmp_path: Path, baseline: Path, change: str, args: list[str], expected: str) -> None:
    data = json.loads(baseline.read_text())
    if change == "data":
        data["manifest"]["datasets"]["gsm8k"]["sha256"] = "0" * 64
    if change == "prompt":
        data["cases"][0]["prompt_template_hash"] = "0123456789abcdef"
    if change == "scorer":
        data["cases"][0]["scorer"]["version"] = "0"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    good = _completions(tmp_path, "good.jsonl", set())
    res = suite.runpytest_subprocess(*ARGS, *args, f"--completions={good}", f"--report-dir={tmp_path / 'r'}",
                                     f"--baseline={edited}")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([f"*--baseline {edited} cannot be compared with this run: {expected.lstrip('*')}"])
    assert not (tmp_path / "r" / "codeeval.sqlite").exists()


@needs_shared
def test_a_baseline_without_data_hashes_is_still_accepted(suite: pytest.Pytester, tmp_path: Path,
                                                          baseline: Path) -> None:
    data = json.loads(baseline.read_text())
    del data["manifest"]["datasets"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(data))
    res = suite.runpytest_subprocess(*ARGS, f"--completions={_completions(tmp_path, 'good.jsonl', set())}",
                                     f"--report-dir={tmp_path / 'r'}", f"--baseline={older}")
    res.assert_outcomes(passed=1)


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
