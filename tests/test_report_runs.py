"""Report figures through whole runs of the plugin (pytester): a replay of
IFEval-format replies keeps an unclosed reply's instructions in the
denominator and reports no throughput; a crashed and resumed run keeps the
tokens/s measured when its samples were made (and passes the throughput
gate); scorer options reach the scorer from the catalog and the command
line, and bad ones are usage errors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SHARED_DATASETS, needs_shared


def _comparison(report_dir: Path) -> dict:
    return json.loads(next((report_dir / "comparisons").glob("*_comparison.json")).read_text())


def _fixture_rows(name: str) -> list[dict]:
    from pytest_codeeval.datasets.shipped import fixtures_dir

    return [json.loads(x) for x in (fixtures_dir() / name).read_text().splitlines() if x.strip()]


# -- IFEval replies replayed: the denominator, and no throughput -----------------------------------------


def test_a_replayed_unclosed_think_reply_lowers_instruction_level_accuracy(suite: pytest.Pytester,
                                                                           tmp_path: Path) -> None:
    rows = _fixture_rows("instruction_following_sample.jsonl")[:2]
    follows, thinks = rows
    assert len(follows["instruction_id_list"]) == 2 and len(thinks["instruction_id_list"]) == 1
    completions = tmp_path / "replies.jsonl"
    completions.write_text(
        json.dumps({"task_id": str(follows["key"]), "completion": follows["reference_response"]}) + "\n"
        + json.dumps({"task_id": str(thinks["key"]), "completion": "<think>a note to a neighbour... let me plan"})
        + "\n")
    reports = tmp_path / "reports"
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--datasets", "instruction_following_sample",
                                     "--samples", "2", f"--completions={completions}",
                                     f"--report-dir={reports}")
    res.assert_outcomes(passed=1)
    comp = _comparison(reports)
    case = comp["cases"][0]
    # 2 of 3 instructions followed: the unclosed reply's instruction stays in the denominator.
    assert case["metrics"]["inst_level_strict_acc"] == pytest.approx(2 / 3)
    assert case["metrics"]["prompt_level_strict_acc"] == 0.5
    assert case["verdicts"] == {"no_answer": 1, "passed": 1} and case["unclosed_thinking"] == 0.5
    # A replay measures nothing: no speed, no load, no memory, no device.
    perf = case["performance"]
    assert {k: perf[k] for k in ("tokens_per_s", "generation_s", "load_s", "peak_memory_bytes", "device")} == dict.fromkeys(
        ("tokens_per_s", "generation_s", "load_s", "peak_memory_bytes", "device"))
    assert "Fastest" not in comp["recommendation"]
    md = next((reports / "markdown").glob("*.md")).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| replay-instruction_following_sample ")
               and "replay" in line and "—" in line)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert [cells[i] for i in (1, 3, 5, 6)] == ["—"] * 4  # device, tokens/s, load, peak memory
    html = next((reports / "html").glob("*.html")).read_text()
    perf_html = html.split("<h2>Performance</h2>")[1].split("</table>")[0]
    assert "—" in perf_html and "None" not in perf_html
    assert html.count("data:image/png;base64,") == 1  # the heatmap: no throughput bars, no score vs speed
    assert sorted(p.name.rsplit("_comparison_", 1)[1] for p in (reports / "plots").iterdir()) == ["heatmap.png"]
    perf_file = json.loads(next((reports / "performance").glob("*.json")).read_text())
    assert perf_file["totals"]["tokens_per_s"] is None and perf_file["totals"]["load_s"] is None


# -- samples the harness could not judge: out of n, reported apart -----------------------------------------

UNJUDGED_CONFTEST = '''
from pytest_codeeval import registry
from pytest_codeeval.items import Verdict
from pytest_codeeval.scoring.code import CodeExecScorer


class Unjudged(CodeExecScorer):
    """No sandbox: the first item's samples could not be judged (sandbox_error), the second's outcome would
    have been the sample's to decide (unverified), the others pass."""

    def score(self, items, answers, ctx):
        kinds = ["sandbox_error", "unverified"]
        return [[Verdict(item.id, j, False, kinds[i], "the harness could not judge it") if i < 2
                 else Verdict(item.id, j, True, "passed", "", {"passed": 1.0}) for j in range(len(samples))]
                for i, (item, samples) in enumerate(zip(items, answers))]


registry.SCORERS.register("code_exec", Unjudged)
'''


def test_samples_the_harness_could_not_judge_are_out_of_n_and_flagged(suite: pytest.Pytester,
                                                                       tmp_path: Path) -> None:
    suite.makeconftest(UNJUDGED_CONFTEST)
    reports = tmp_path / "reports"
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine", "reference", "--datasets",
                                     "advanced_coding_sample", "--samples", "6", f"--report-dir={reports}")
    res.assert_outcomes(passed=1)
    comp = _comparison(reports)
    case = comp["cases"][0]
    # the sandbox_error is out of n; the unverified sample stays in n, never a pass: 4 of 5, not 4 of 6
    assert case["score"] == 0.8 and case["metrics"]["pass@1"] == 0.8
    assert case["not_judged"] == 1 and len(case["item_scores"]) == 5
    assert case["metrics"]["sandbox_errors"] == 1 and case["metrics"]["unverified"] == 1
    assert comp["not_judged"]["cases"] == [{"case_id": "reference-advanced_coding_sample", "not_judged": 1,
                                            "unverified": 1, "samples": 6, "share": pytest.approx(1 / 3),
                                            "flagged": True, "kinds": {"sandbox_error": 1, "unverified": 1}}]
    md = next((reports / "markdown").glob("*.md")).read_text()
    assert "⚠ reference-advanced_coding_sample" in md and "sandbox_error 1, unverified 1" in md


# -- crash and resume: tokens/s is what was measured when the samples were made ---------------------------

TIMED_CONFTEST = '''
import os, signal, time
from pytest_codeeval import registry
from pytest_codeeval.engines.reference import ReferenceEngine
from pytest_codeeval.scoring.gsm8k import Gsm8kScorer


class TimedReference(ReferenceEngine):
    """The reference answers at a measured speed, with a slow load (as a real model's)."""

    measures_speed = True

    def _load(self):
        time.sleep(float(os.environ["TEST_LOAD_S"]))

    def generate(self, requests):
        time.sleep(0.05 * len(requests))
        out = super().generate(requests)
        self.last_call = {"completion_tokens": sum(g.completion_tokens for r in out for g in r)}
        return out


class CrashingGsm8k(Gsm8kScorer):
    def score(self, items, answers, ctx):
        if os.environ.get("TEST_CRASH"):
            os.kill(os.getpid(), signal.SIGKILL)  # after the generations were stored
        return super().score(items, answers, ctx)


registry.ENGINES.register("reference", TimedReference)
registry.SCORERS.register("gsm8k", CrashingGsm8k)
'''

RESUME_ARGS = ["-p", "no:cacheprovider", "--engine", "reference", "--samples", "12"]
BOTH = "--datasets=gsm8k,reasoning_sample"


def _run(cwd: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CODEEVAL_DATA_DIR": str(SHARED_DATASETS),
            "TEST_LOAD_S": "3", **env}
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=300)


@needs_shared
def test_after_a_crash_the_resumed_run_reports_the_original_speed_and_passes_the_throughput_gate(
        suite: pytest.Pytester) -> None:
    """The crashed run made gsm8k's samples (one engine call, stored) and
    died while scoring; the rerun, with one more dataset, reuses them and
    loads the model (3 s) to make reasoning_sample's.  gsm8k keeps the
    tokens/s measured when its samples were made; the load lands in neither
    case's generation time, so neither fails --max-throughput-drop."""
    suite.makeconftest(TIMED_CONFTEST)
    cwd = suite.path
    clean = _run(cwd, [*RESUME_ARGS, BOTH, f"--report-dir={cwd / 'clean'}"])
    assert clean.returncode == 0, clean.stdout[-3000:]
    baseline = next((cwd / "clean" / "comparisons").glob("*.json"))
    assert all(c["performance"]["load_s"] >= 3.0 and c["performance"]["tokens_per_s"] is not None
               for c in _comparison(cwd / "clean")["cases"])

    crashed = _run(cwd, [*RESUME_ARGS, "--datasets=gsm8k", f"--report-dir={cwd / 'run'}"], TEST_CRASH="1")
    assert crashed.returncode == -9, crashed.stdout[-3000:]
    conn = sqlite3.connect(cwd / "run" / "codeeval.sqlite")
    (made_tps,) = conn.execute("SELECT tokens_per_s FROM calls").fetchone()  # the one call the crashed run made
    conn.close()

    resumed = _run(cwd, [*RESUME_ARGS, BOTH, f"--report-dir={cwd / 'run'}", f"--baseline={baseline}",
                         "--max-throughput-drop=0.5"])
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert "codeeval gating: no regression in 2 cases" in resumed.stdout
    perf = {c["dataset"]: c["performance"] for c in _comparison(cwd / "run")["cases"]}
    gsm8k, reasoning = perf["gsm8k"], perf["reasoning_sample"]
    # gsm8k: nothing generated, no load in this case's figures, the crashed run's measurement.
    assert (gsm8k["generated"], gsm8k["generations_reused"]) == (0, 12)
    assert gsm8k["tokens_per_s"] == round(made_tps, 2)
    # reasoning_sample: generated here, after a load timed on its own (had the 3 s load landed in its
    # 0.6 s of generation, its tokens/s would be 80% lower and fail the gate).
    assert (reasoning["generated"], reasoning["generations_reused"]) == (12, 0) and reasoning["load_s"] >= 3.0

    # Once more: everything is stored, so nothing loads and nothing claims a load.
    again = _run(cwd, [*RESUME_ARGS, BOTH, f"--report-dir={cwd / 'run'}", f"--baseline={baseline}",
                       "--max-throughput-drop=0.5"])
    assert again.returncode == 0, again.stdout[-3000:]
    perf_again = {c["dataset"]: c["performance"] for c in _comparison(cwd / "run")["cases"]}
    for dataset, p in perf_again.items():
        assert (p["generated"], p["load_s"], p["prepare_s"]) == (0, None, None)
        assert p["tokens_per_s"] == perf[dataset]["tokens_per_s"]


# -- scorer options: catalog and command line ------------------------------------------------------------------


def _fenced_function_calls(tmp_path: Path) -> Path:
    from pytest_codeeval.catalog import load_catalog
    from pytest_codeeval.datasets import LoadContext, load_dataset

    items = load_dataset(load_catalog().dataset("function_calling_sample"), LoadContext())[:4]
    path = tmp_path / "fenced.jsonl"
    path.write_text("".join(json.dumps({"task_id": i.id, "completion": f"```python\n{i.reference}\n```"}) + "\n"
                            for i in items))
    return path


FC = ["-p", "no:cacheprovider", "--datasets", "function_calling_sample", "--samples", "4"]


def test_bfcl_reads_strictly_by_default_and_relaxed_by_option(suite: pytest.Pytester, tmp_path: Path) -> None:
    replies = _fenced_function_calls(tmp_path)
    store = f"--store={tmp_path / 'shared.sqlite'}"  # one store: a strict verdict must not serve a relaxed run
    strict = suite.runpytest_subprocess(*FC, f"--completions={replies}", f"--report-dir={tmp_path / 'a'}", store)
    strict.assert_outcomes(passed=1)
    case = _comparison(tmp_path / "a")["cases"][0]
    assert case["score"] == 0.0 and case["scorer"]["version"] == "2" and "options" not in case["scorer"]

    relaxed = suite.runpytest_subprocess(*FC, f"--completions={replies}", f"--report-dir={tmp_path / 'b'}", store,
                                         "--scorer-option=bfcl_strict_format=false")
    relaxed.assert_outcomes(passed=1)
    case = _comparison(tmp_path / "b")["cases"][0]
    assert case["score"] == 1.0 and case["scorer"]["options"] == {"bfcl_strict_format": False}
    assert case["performance"]["verdicts_reused"] == 0

    catalog = tmp_path / "catalog.toml"
    catalog.write_text("[datasets.function_calling_sample]\nscorer_options = { bfcl_strict_format = false }\n")
    from_catalog = suite.runpytest_subprocess(*FC, f"--completions={replies}", f"--report-dir={tmp_path / 'c'}",
                                              store, f"--catalog={catalog}")
    from_catalog.assert_outcomes(passed=1)
    case = _comparison(tmp_path / "c")["cases"][0]
    assert case["score"] == 1.0 and case["performance"]["verdicts_reused"] == 4  # the same reading as run b
    # The command line wins over the catalog.
    both = suite.runpytest_subprocess(*FC, f"--completions={replies}", f"--report-dir={tmp_path / 'd'}", store,
                                      f"--catalog={catalog}", "--scorer-option=function_calling_sample:"
                                      "bfcl_strict_format=true")
    both.assert_outcomes(passed=1)
    assert _comparison(tmp_path / "d")["cases"][0]["score"] == 0.0
    # A strict baseline cannot judge a relaxed run: its scores mean something else.
    strict_baseline = next((tmp_path / "a" / "comparisons").glob("*.json"))
    refused = suite.runpytest_subprocess(*FC, f"--completions={replies}", f"--report-dir={tmp_path / 'e'}",
                                         f"--baseline={strict_baseline}", "--scorer-option=bfcl_strict_format=false")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*replay-function_calling_sample: scorer options differ (defaults -> "
                                  "{'bfcl_strict_format': False})*"])


@pytest.mark.parametrize(("args", "catalog", "message"), [
    (["--scorer-option=bfcl_strict_fromat=false"], None,
     "*--scorer-option bfcl_strict_fromat: no selected dataset's scorer has this option. Did you mean "
     "bfcl_strict_format?*"),
    (["--scorer-option=bfcl_strict_format=maybe"], None,
     "*--scorer-option bfcl_strict_format: scorer option bfcl_strict_format must be true or false, got 'maybe'*"),
    (["--scorer-option=gsm8k:bfcl_strict_format=false"], None,
     "*--scorer-option gsm8k:bfcl_strict_format: dataset 'gsm8k' is not in this run*"),
    (["--scorer-option=strict"], None, "*--scorer-option 'strict': write NAME=VALUE or DATASET:NAME=VALUE*"),
    ([], "[datasets.function_calling_sample]\nscorer_options = { strict = true }\n",
     "*datasets.function_calling_sample.scorer_options: the bfcl_ast scorer has no option 'strict'. Its options: "
     "bfcl_strict_format*"),
])
def test_bad_scorer_options_are_usage_errors(suite: pytest.Pytester, tmp_path: Path, args: list[str],
                                             catalog: str | None, message: str) -> None:
    extra = list(args)
    if catalog is not None:
        path = tmp_path / "catalog.toml"
        path.write_text(catalog)
        extra.append(f"--catalog={path}")
    res = suite.runpytest_subprocess(*FC, "--engine", "reference", f"--report-dir={tmp_path / 'r'}", *extra)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([message])
