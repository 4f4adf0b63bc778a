"""Reports of a cpu_smoke-like run with the reference engine: JSON valid
against the shipped schema, Markdown sections, self-contained HTML, plots,
per-model performance files, --junitxml properties; bad input is a usage
error that loses nothing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import SHARED_DATASETS, needs_shared
from pytest_codeeval.report.comparison import load_schema, validate_comparison

RUN = ["-p", "no:cacheprovider", "--engine", "reference", "--datasets", "gsm8k,advanced_coding_extended",
       "--samples", "3", "--preset", "balanced,performance"]


@pytest.fixture
def smoke(suite: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> tuple[pytest.RunResult, Path, Path]:
    suite._monkeypatch.setenv("CODEEVAL_DATA_DIR", str(SHARED_DATASETS))
    out = tmp_path_factory.mktemp("smoke")
    junit = out / "junit.xml"
    res = suite.runpytest_subprocess(*RUN, f"--report-dir={out / 'reports'}", "--junitxml", str(junit))
    return res, out / "reports", junit


@needs_shared
@pytest.mark.slow
def test_smoke_run_writes_every_report(smoke: tuple[pytest.RunResult, Path, Path]) -> None:
    res, reports, junit = smoke
    res.assert_outcomes(passed=4)
    stem = "custom_balanced+performance_comparison"
    comp = json.loads((reports / "comparisons" / f"{stem}.json").read_text())
    assert validate_comparison(comp) == []
    assert comp["schema_version"] == load_schema()["properties"]["schema_version"]["const"]
    assert all(c["ci"]["method"] == "wilson" and c["ci"]["high"] == 1.0 for c in comp["cases"])
    assert [r["model"] for r in comp["rankings"]] == ["reference@balanced", "reference@performance"]
    assert comp["paired_comparison"]["significant"] is False  # identical answers
    assert comp["recommendation"]

    md = (reports / "markdown" / f"{stem}.md").read_text()
    for heading in ("## Scores", "## Ranking", "95% CI", "## Paired comparison of the top two",
                    "## Strengths and weaknesses per task type", "## Recommendation", "## Performance",
                    "not significant", "load s", "tokens/s", "peak memory", "wall s"):
        assert heading in md, heading
    assert "**100.0%**" in md  # best per dataset marked

    html = (reports / "html" / f"{stem}.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "src=\"http" not in html and "<link" not in html  # self-contained
    assert "Failing samples by cause" in html

    for name in ("heatmap", "throughput", "score_vs_speed"):
        assert (reports / "plots" / f"{stem}_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    perf = {p.name: json.loads(p.read_text()) for p in (reports / "performance").glob("*.json")}
    assert set(perf) == {"reference@balanced.json", "reference@performance.json"}
    assert all(len(p["cases"]) == 2 and "load_s" in p["totals"] for p in perf.values())

    row = json.loads((reports / "samples" / "reference@balanced__gsm8k.jsonl").read_text().splitlines()[0])
    assert {"prompt", "raw_output", "extracted", "verdict", "detail"} <= set(row)
    assert list((reports / "logs").glob("*.log"))

    cases = ET.parse(junit).getroot().iter("testcase")
    props = [{p.get("name"): p.get("value") for p in c.iter("property")} for c in cases]
    assert len(props) == 4
    assert all(p["codeeval.score"] == "1.0" and "codeeval.tokens_per_s" in p for p in props)
    assert any(k.startswith("codeeval.metric.") for k in props[0])


def test_html_groups_failures_by_cause() -> None:
    from pytest_codeeval.report.html import group_failures

    results = [{"case_id": "c", "samples": [
        {"task_id": "a", "passed": False, "verdict": "failed", "detail": "assert f(3) == 4"},
        {"task_id": "b", "passed": False, "verdict": "failed", "detail": "assert f(10) == 41"},
        {"task_id": "c", "passed": False, "verdict": "timeout", "detail": "ran over 5.0 s"},
        {"task_id": "d", "passed": True, "verdict": "passed", "detail": ""},
    ]}]
    groups = group_failures(results)
    assert [len(v) for v in groups.values()] == [2, 1]
    assert list(groups)[0] == "failed: assert f(N) == N"


def test_schema_rejects_a_broken_comparison() -> None:
    assert validate_comparison({"schema_version": 1})  # required fields missing
    problems = validate_comparison({"schema_version": 2})
    assert any("schema_version" in p for p in problems)


@needs_shared
def test_unwritable_report_dir_is_a_usage_error(suite: pytest.Pytester, tmp_path: Path) -> None:
    suite._monkeypatch.setenv("CODEEVAL_DATA_DIR", str(SHARED_DATASETS))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine", "reference", "--datasets", "gsm8k",
                                     "--samples", "1", f"--report-dir={blocker / 'reports'}")
    assert res.ret == pytest.ExitCode.USAGE_ERROR or res.ret == pytest.ExitCode.INTERRUPTED
    assert "cannot be written" in res.stdout.str() + res.stderr.str()
    assert "--report-dir" in res.stdout.str() + res.stderr.str()


@needs_shared
def test_corrupted_store_is_a_usage_error_and_kept(suite: pytest.Pytester, tmp_path: Path) -> None:
    suite._monkeypatch.setenv("CODEEVAL_DATA_DIR", str(SHARED_DATASETS))
    reports = tmp_path / "reports"
    reports.mkdir()
    store = reports / "codeeval.sqlite"
    store.write_bytes(b"garbage" * 1000)
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine", "reference", "--datasets", "gsm8k",
                                     "--samples", "1", f"--report-dir={reports}")
    assert res.ret != 0
    assert "not a SQLite database" in res.stdout.str() + res.stderr.str()
    assert store.read_bytes() == b"garbage" * 1000
    assert not (reports / "comparisons").exists()
