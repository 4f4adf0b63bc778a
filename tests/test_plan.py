"""The plan: cases, ids, marks, the dry run, --setup-plan (pytester round trips)."""

from __future__ import annotations

import json
import sys

import pytest


def test_dry_run_lists_the_35_coding_specialist_cases(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--collect-only", "-q", "-m", "coding_specialists", "--preset=balanced")
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_codeeval[" in line]
    assert len(ids) == 35
    models = {"qwen3_8b", "qwen3_14b", "qwen3_32b", "qwen2_5_coder_7b", "qwen2_5_coder_14b"}
    datasets = {"humaneval", "mbpp", "advanced_coding_sample", "advanced_coding_extended",
                "function_calling_sample", "reasoning_sample", "instruction_following_sample"}
    assert set(ids) == {f"{m}-{d}" for m in models for d in datasets}
    result.stdout.fnmatch_lines(["35 cases: 5 models x 7 datasets, preset balanced"])


def test_dry_run_writes_the_plan_and_imports_no_engine(suite: pytest.Pytester) -> None:
    suite.makeconftest(
        """
        import sys, json
        def pytest_sessionfinish(session):
            heavy = [m for m in ("vllm", "torch", "transformers") if m in sys.modules]
            open("imported.json", "w").write(json.dumps(heavy))
        """
    )
    result = suite.runpytest_subprocess("--collect-only", "-q", "-m", "coding_specialists", "--preset=balanced")
    assert result.ret == 0
    assert json.loads((suite.path / "imported.json").read_text()) == []
    plan = json.loads((suite.path / "reports" / "plans" / "coding_specialists_balanced_plan.json").read_text())
    assert len(plan["cases"]) == 35
    assert plan["cases"][0]["id"] == f"{plan['cases'][0]['model']}-{plan['cases'][0]['dataset']}"
    assert plan["summary"] == "35 cases: 5 models x 7 datasets, preset balanced"


def test_mark_expressions_select_by_category_model_and_dataset(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--collect-only", "-q", "-m", "coding_specialists and not mbpp", "--strict-markers")
    assert sum("::test_codeeval[" in line for line in result.outlines) == 30
    result = suite.runpytest("--collect-only", "-q", "-m", "coding_specialists and qwen3_8b", "--strict-markers")
    assert sum("::test_codeeval[" in line for line in result.outlines) == 7
    assert result.ret == 0


def test_models_and_datasets_narrow_a_category(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--collect-only", "-q", "-m", "coding_specialists",
                             "--models", "qwen3_8b,qwen3_14b", "--datasets", "humaneval,reasoning_sample")
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_codeeval[" in line)
    assert ids == ["qwen3_14b-humaneval", "qwen3_14b-reasoning_sample", "qwen3_8b-humaneval", "qwen3_8b-reasoning_sample"]


def test_without_m_the_default_is_cpu_smoke(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--collect-only", "-q")
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_codeeval[" in line]
    assert ids and all(i.startswith("smollm2_135m_instruct-") for i in ids)
    assert "smollm2_135m_instruct-humaneval" in ids


def test_several_presets_make_model_x_preset_x_dataset_cases(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--collect-only", "-q", "-m", "coding_specialists", "--models", "qwen3_8b",
                             "--datasets", "humaneval", "--preset", "balanced,performance")
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_codeeval[" in line]
    assert ids == ["qwen3_8b-balanced-humaneval", "qwen3_8b-performance-humaneval"]
    result.stdout.fnmatch_lines(["2 cases: 1 model x 1 dataset, presets balanced, performance"])


def test_setup_plan_loads_each_model_once_in_order(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--setup-plan", "-m", "coding_specialists",
                             "--models", "qwen3_8b,qwen2_5_coder_7b", "--datasets", "humaneval,reasoning_sample,mbpp")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()  # mbpp is not here: a dry run goes on
    setups = [line.strip() for line in result.outlines if "SETUP    S codeeval_engine" in line]
    teardowns = [line.strip() for line in result.outlines if "TEARDOWN S codeeval_engine" in line]
    assert len(setups) == 2 and len(teardowns) == 2
    # The first model is torn down before the second is set up.
    text = "\n".join(result.outlines)
    first = setups[0].split("[")[1]
    assert text.index(f"TEARDOWN S codeeval_engine[{first}") < text.index(setups[1])


def test_cases_carry_the_xdist_group_of_their_model(suite: pytest.Pytester) -> None:
    suite.makeconftest(
        """
        def pytest_collection_modifyitems(items):
            with open("groups.txt", "w") as f:
                for item in items:
                    mark = item.get_closest_marker("xdist_group")
                    f.write(f"{item.callspec.id} {mark.args[0] if mark else None}\\n")
        """
    )
    suite.runpytest("--collect-only", "-q", "-m", "coding_specialists", "--models", "qwen3_8b", "--datasets", "humaneval,mbpp")
    lines = (suite.path / "groups.txt").read_text().split()
    assert "qwen3_8b@balanced" in lines


@pytest.mark.skipif(sys.platform != "linux", reason="xdist worker layout")
def test_collect_only_under_xdist_lists_the_same_cases(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-n", "2", "--collect-only", "-q", "-m", "coding_specialists")
    assert result.ret == 0
