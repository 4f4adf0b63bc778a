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
                    "not significant", "| load ", "tokens/s", "peak memory", "| wall ", "## Presets side by side",
                    "score vs first preset"):
        assert heading in md, heading
    # both presets score 100%: a tie of everyone is nobody's best, so nothing is bold
    assert "**100.0%**" not in md
    assert comp["best_per_dataset"]["gsm8k"]["models"] == ["reference@balanced", "reference@performance"]

    html = (reports / "html" / f"{stem}.html").read_text()
    # The reference engine measures no speed: the heatmap only, no throughput bars, no score vs speed.
    assert html.count("data:image/png;base64,") == 1
    assert "src=\"http" not in html and "<link" not in html  # self-contained
    assert "Failing samples by cause" in html

    assert (reports / "plots" / f"{stem}_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (reports / "plots" / f"{stem}_throughput.png").exists()
    assert not (reports / "plots" / f"{stem}_score_vs_speed.png").exists()
    perf = {p.name: json.loads(p.read_text()) for p in (reports / "performance").glob("*.json")}
    assert set(perf) == {"reference@balanced.json", "reference@performance.json"}
    assert all(len(p["cases"]) == 2 and p["totals"]["load_s"] is None and p["totals"]["tokens_per_s"] is None
               and p["totals"]["peak_memory_bytes"] is None for p in perf.values())
    assert comp["preset_differences"]["reference"][0]["difference"] == 0.0

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


# -- the report logic on adversarial inputs (synthetic CaseResults, no run) -----------------------------

from synthetic import DATASETS, MODEL_NAMES, case, many, write  # noqa: E402


def _rank(comp: dict) -> list[tuple[str, int | None]]:
    return [(r["model"], r["rank"]) for r in comp["rankings"]]


def test_a_model_that_errored_on_the_hard_dataset_is_not_ranked_on_the_easy_one(tmp_path: Path) -> None:
    """The issue's case: averaging each model over what it completed ranked
    first, and recommended, a model 35 points worse on the shared items."""
    easy_a = [True] * 24 + [False] * 16  # 60%
    easy_b = [True] * 38 + [False] * 2  # 95%
    results = [case("model_a", "humaneval", easy_a), case("model_a", "mbpp", status="error"),
               case("model_b", "humaneval", easy_b), case("model_b", "mbpp", [True] * 4 + [False] * 36)]
    comp = write(results, tmp_path)["comparison"]
    assert comp["ranking_basis"] == ["humaneval"]
    assert _rank(comp) == [("model_b", 1), ("model_a", 2)]
    a = comp["rankings"][1]
    assert (a["completed"], a["planned"], a["missing"]) == (1, 2, [{"dataset": "mbpp", "why": "error"}])
    rec = comp["recommendation"]
    assert "prefer model_b over model_a" in rec and "prefer model_a" not in rec
    assert "model_a lacks mbpp" in rec
    md = (tmp_path / "markdown" / "synthetic_balanced_comparison.md").read_text()
    assert "every ranked model completed (humaneval)" in md and "| 1/2 " in md and "mbpp (error)" in md


def test_a_significant_paired_difference_decides_even_against_the_order_of_the_means(tmp_path: Path) -> None:
    a = case("model_a", "humaneval", [True] * 20 + [False] * 20)
    b = case("model_b", "humaneval", [True] * 34 + [False] * 6)
    # model_a's score counts 10 items that model_b has no judged sample for (sandbox errors): its mean is
    # higher, but on the 40 items both answered model_b is 35 points better.
    a.score = 0.90
    comp = write([a, b], tmp_path)["comparison"]
    assert _rank(comp)[0] == ("model_a", 1)
    assert comp["paired_comparison"]["difference"] < 0 and comp["paired_comparison"]["significant"]
    assert "prefer model_b over model_a" in comp["recommendation"]
    assert "reverses the order of the means" in comp["recommendation"]


def test_a_tie_is_a_tie_and_speed_breaks_it_only_when_both_speeds_were_measured(tmp_path: Path) -> None:
    outcome_a = [True] * 21 + [False] * 19
    outcome_b = [False] + [True] * 22 + [False] * 17  # 22 vs 21 passes: noise
    no_speed = write([case("model_a", "humaneval", outcome_a, tokens_per_s=None),
                      case("model_b", "humaneval", outcome_b, tokens_per_s=None)], tmp_path / "none")["comparison"]
    rec = no_speed["recommendation"]
    assert "statistically tied" in rec and "neither is shown to be better" in rec
    assert "No speed was measured for model_b and model_a, so speed cannot break the tie" in rec
    assert "faster" not in rec and "better buy" not in rec and "Fastest" not in rec
    one = write([case("model_a", "humaneval", outcome_a, tokens_per_s=500.0),
                 case("model_b", "humaneval", outcome_b, tokens_per_s=None)], tmp_path / "one")["comparison"]
    assert "No speed was measured for model_b" in one["recommendation"] and "faster" not in one["recommendation"]
    both = write([case("model_a", "humaneval", outcome_a, tokens_per_s=500.0),
                  case("model_b", "humaneval", outcome_b, tokens_per_s=100.0)], tmp_path / "both")["comparison"]
    assert "model_a is faster (500 against 100 tokens/s), so it is the better buy" in both["recommendation"]


def test_equal_means_share_a_rank(tmp_path: Path) -> None:
    same = [True] * 10 + [False] * 10
    comp = write([case("model_a", "humaneval", same), case("model_b", "humaneval", same[::-1]),
                  case("model_c", "humaneval", [True] * 5 + [False] * 15)], tmp_path)["comparison"]
    assert _rank(comp) == [("model_a", 1), ("model_b", 1), ("model_c", 3)]
    assert "model_a and model_b have the same mean score, 50.0%" in comp["recommendation"]
    assert comp["best_per_dataset"]["humaneval"]["models"] == ["model_a", "model_b"]


def test_no_dataset_in_common_means_no_ranking(tmp_path: Path) -> None:
    comp = write([case("model_a", "humaneval"), case("model_a", "mbpp", status="error"),
                  case("model_b", "mbpp"), case("model_b", "humaneval", status="error")], tmp_path)["comparison"]
    assert comp["ranking_basis"] == [] and [r["rank"] for r in comp["rankings"]] == [None, None]
    assert comp["paired_comparison"] is None
    assert "No dataset was completed by every model, so no model is ranked" in comp["recommendation"]
    assert validate_comparison(comp) == []


def test_one_model(tmp_path: Path) -> None:
    out = write([case("smollm2_135m_instruct", d, n=5) for d in DATASETS], tmp_path)
    comp = out["comparison"]
    assert _rank(comp) == [("smollm2_135m_instruct", 1)] and comp["paired_comparison"] is None
    assert comp["recommendation"].startswith("Only one model completed a case: smollm2_135m_instruct")
    table = (tmp_path / "markdown" / "synthetic_balanced_comparison.md").read_text().split("| model ")[1]
    assert "**" not in table.split("## Ranking")[0]  # one model is not "best" of anything
    assert set(out["paths"]) >= {"json", "markdown", "html"} and validate_comparison(comp) == []


def test_thirty_six_models_and_seven_datasets(tmp_path: Path) -> None:
    out = write(many(), tmp_path)
    comp = out["comparison"]
    assert len(comp["rankings"]) == 36 and len(comp["cases"]) == 252
    assert "advanced_coding_sample" not in comp["ranking_basis"]  # qwen3_32b errored there
    assert len(comp["ranking_basis"]) == 6 and validate_comparison(comp) == []
    html = out["paths"]["html"].read_text()
    assert all(m in html for m in MODEL_NAMES) and html.count("data:image/png;base64,") == 3


def test_model_free_engines_measure_no_speed_memory_or_load(tmp_path: Path) -> None:
    """null in the JSON, "—" in Markdown and HTML, no throughput plot, no score-vs-speed plot."""
    results = [case(m, d, tokens_per_s=None, load_s=None) for m in ("reference", "other") for d in DATASETS[:2]]
    out = write(results, tmp_path, engine="reference")
    comp = out["comparison"]
    assert all(c["performance"]["tokens_per_s"] is None and c["performance"]["load_s"] is None
               and c["performance"]["peak_memory_bytes"] is None for c in comp["cases"])
    assert "Fastest" not in comp["recommendation"] and "tokens/s" not in comp["recommendation"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["synthetic_balanced_comparison_heatmap.png"]
    perf = json.loads((tmp_path / "performance" / "reference.json").read_text())["totals"]
    assert perf["tokens_per_s"] is None and perf["load_s"] is None and perf["peak_memory_bytes"] is None
    assert perf["generation_s"] is None
    md = (tmp_path / "markdown" / "synthetic_balanced_comparison.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| reference-humaneval ") and "—" in line)
    assert row.split("|")[4].strip() == "—"  # tokens/s
    html = out["paths"]["html"].read_text()
    assert "<td>None</td>" not in html and "<td></td>" not in html.split("<h2>Performance")[1].split("</table>")[0]


def test_a_resumed_case_keeps_its_measured_speed_and_reports_no_load(tmp_path: Path) -> None:
    resumed = case("model_a", "humaneval", n=20, tokens_per_s=321.0, generated=False)
    comp = write([resumed], tmp_path)["comparison"]
    perf = comp["cases"][0]["performance"]
    assert (perf["tokens_per_s"], perf["load_s"], perf["generations_reused"]) == (321.0, None, 20)
    md = (tmp_path / "markdown" / "synthetic_balanced_comparison.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| model_a-humaneval ") and "cuda" in line)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[3] == "321" and cells[5] == "—" and cells[-1] == "20/20"  # tokens/s, load, reused


def test_numbers_are_rounded_to_what_they_mean(tmp_path: Path) -> None:
    out = write([case("model_a", "humaneval", tokens_per_s=47.123)], tmp_path)
    md = out["paths"]["markdown"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| model_a-humaneval ") and "cuda" in line)
    assert "54.0 s" in row and "53.975" not in row and "| 47.1 " in row and "3.0 GiB (GPU)" in row
    assert "53.975" not in out["paths"]["html"].read_text()


def test_samples_not_judged_are_reported_apart_and_many_are_flagged(tmp_path: Path) -> None:
    many_errors = case("model_a", "humaneval", n=30, not_judged={"sandbox_error": 2, "unverified": 1})
    few_errors = case("model_a", "mbpp", n=100, not_judged={"sandbox_error": 1})
    out = write([many_errors, few_errors], tmp_path)
    rows = {r["case_id"]: r for r in out["comparison"]["not_judged"]["cases"]}
    assert rows["model_a-humaneval"]["flagged"] and rows["model_a-humaneval"]["share"] == pytest.approx(3 / 33)
    assert rows["model_a-humaneval"]["kinds"] == {"sandbox_error": 2, "unverified": 1}
    assert not rows["model_a-mbpp"]["flagged"]
    md = out["paths"]["markdown"].read_text()
    assert "## Samples not judged" in md and "⚠ model_a-humaneval" in md and "reach 5.0% of its samples" in md
    assert "sandbox_error 2, unverified 1" in md
    assert "⚠" in out["paths"]["html"].read_text()


def test_the_cost_of_a_token_budget_is_visible(tmp_path: Path) -> None:
    out = write([case("r1_model", "gsm8k", cut_off=0.25, unclosed=0.125)], tmp_path)
    md = out["paths"]["markdown"].read_text()
    assert "| cut off | unclosed think |" in md.replace("  ", " ") or "cut off" in md
    row = next(line for line in md.splitlines() if line.startswith("| r1_model-gsm8k ") and "passed" in line)
    assert "25.0%" in row and "12.5%" in row
    html = out["paths"]["html"].read_text()
    assert "unclosed think" in html and "25.0%" in html and "12.5%" in html


def test_presets_side_by_side_show_the_score_difference_on_the_same_items(tmp_path: Path) -> None:
    full = [True] * 36 + [False] * 4
    fp8 = [True] * 24 + [False] * 16  # 12 items lost with the fp8 KV cache
    results = [case("qwen3_8b", "humaneval", full, preset="balanced", multi=True, tokens_per_s=900.0),
               case("qwen3_8b", "humaneval", fp8, preset="memory_optimized", multi=True, tokens_per_s=700.0)]
    out = write(results, tmp_path, presets=("balanced", "memory_optimized"))
    diff = out["comparison"]["preset_differences"]["qwen3_8b"][0]
    assert (diff["preset"], diff["against"], diff["n_items"]) == ("memory_optimized", "balanced", 40)
    assert diff["difference"] == pytest.approx(-0.3) and diff["significant"] and diff["high"] < 0
    md = out["paths"]["markdown"].read_text()
    assert "-30.0 vs balanced (95% CI" in md and "40 items, significant)" in md
    assert validate_comparison(out["comparison"]) == []


def test_a_model_that_never_ran_a_dataset_is_ranked_on_the_shared_ones(tmp_path: Path) -> None:
    """Merged shards or another category: model_c has no mbpp case at all."""
    results = [case("model_a", "humaneval", p=0.5), case("model_a", "mbpp", p=0.5),
               case("model_c", "humaneval", p=0.8)]
    comp = write(results, tmp_path)["comparison"]
    assert comp["ranking_basis"] == ["humaneval"]
    c = next(r for r in comp["rankings"] if r["model"] == "model_c")
    assert (c["completed"], c["planned"], c["missing"]) == (1, 1, [{"dataset": "mbpp", "why": "not run"}])
    assert "model_c lacks mbpp" in comp["recommendation"]
    assert validate_comparison(comp) == []
