"""Bad input is a usage error naming the problem and the fix, before any model loads."""

from __future__ import annotations

import json

import pytest


def _error(result: pytest.RunResult) -> str:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    return result.stderr.str()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--models", "qwen3_9b"], ["unknown model 'qwen3_9b'", "Did you mean qwen3_8b", "--models"]),
        (["--datasets", "humaneva"], ["unknown dataset 'humaneva'", "humaneval", "--datasets"]),
        (["--preset", "fastest"], ["unknown preset 'fastest'", "balanced, memory_optimized, performance"]),
        (["--samples", "0"], ["--samples must be a positive integer", "got 0"]),
        (["--samples", "-3"], ["--samples must be a positive integer", "got -3"]),
        (["--samples", "ten"], ["--samples must be a positive integer", "'ten'"]),
        (["--datasets", "missing/tasks.jsonl"], ["no such file", "HumanEval-format JSONL"]),
        (["--pass-k", "5"], ["between 1 and --n-samples (1)"]),
        (["--engine", "server"], ["--base-url"]),
        (["-m", "coding_specialist"], ["unknown category 'coding_specialist'", "Did you mean coding_specialists"]),
    ],
)
def test_bad_options(suite: pytest.Pytester, args: list[str], expected: list[str]) -> None:
    err = _error(suite.runpytest("--collect-only", "-q", *args))
    for text in expected:
        assert text in err


def test_catalog_entry_with_unknown_field(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", catalog='[models.mine]\nhf_id = "me/mine"\nkind = "chat"\nfamily = "x"\n'
                                    'dtype = "bfloat16"\nmax_model_len = 4096\nmax_len = 3\n')
    err = _error(suite.runpytest("--collect-only", "--catalog", "catalog.toml"))
    assert "models.mine: unknown field 'max_len'" in err and "Known fields" in err


def test_catalog_entry_with_missing_field(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", catalog='[models.mine]\nhf_id = "me/mine"\nkind = "chat"\n')
    err = _error(suite.runpytest("--collect-only", "--catalog", "catalog.toml"))
    assert "models.mine: missing field(s)" in err and "dtype" in err and "max_model_len" in err


def test_pyproject_can_add_a_model_and_override_a_preset(suite: pytest.Pytester) -> None:
    suite.makepyprojecttoml(
        """
        [tool.codeeval.models.my_coder]
        hf_id = "me/my-coder"
        kind = "chat"
        family = "mine"
        dtype = "bfloat16"
        max_model_len = 4096

        [tool.codeeval.presets.balanced]
        gpu_memory_utilization = 0.8
        """
    )
    result = suite.runpytest("--collect-only", "-q", "--models", "my_coder", "--datasets", "humaneval")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_codeeval[[]my_coder-humaneval[]]*"])
    from pytest_codeeval.catalog import load_catalog

    catalog = load_catalog(suite.path / "pyproject.toml")
    assert catalog.presets["balanced"].gpu_memory_utilization == 0.8
    assert catalog.presets["balanced"].max_num_seqs == 128  # the rest of the preset is kept


def test_catalog_with_a_wrong_type(suite: pytest.Pytester) -> None:
    suite.makefile(".toml", catalog='[presets.balanced]\nmax_num_seqs = "many"\n')
    err = _error(suite.runpytest("--collect-only", "--catalog", "catalog.toml"))
    assert "presets.balanced: max_num_seqs must be int" in err


def test_dataset_file_that_is_not_jsonl(suite: pytest.Pytester) -> None:
    bad = suite.path / "tasks.jsonl"
    bad.write_text('{"task_id": "t/0", "prompt": "def f():\\n", \n')
    err = _error(suite.runpytest("--collect-only", "--engine", "reference", f"--datasets={bad}"))
    assert "tasks.jsonl, line 1: not valid JSON" in err and "JSONL" in err


def test_dataset_file_missing_a_field(suite: pytest.Pytester) -> None:
    bad = suite.path / "tasks.jsonl"
    bad.write_text(json.dumps({"task_id": "t/0", "prompt": "def f():\n", "test": "", "entry_point": "f"}) + "\n")
    err = _error(suite.runpytest("--collect-only", "--engine", "reference", f"--datasets={bad}"))
    assert "record 1: missing field(s) canonical_solution" in err


def test_completions_naming_unknown_task_ids(suite: pytest.Pytester) -> None:
    samples = suite.path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/9999", "completion": "pass"}) + "\n")
    err = _error(suite.runpytest("--collect-only", "--datasets", "humaneval", f"--completions={samples}"))
    assert "HumanEval/9999" in err and "--datasets" in err


def test_a_model_that_fails_to_load_errors_its_cases_and_others_run(suite: pytest.Pytester) -> None:
    # A model whose weights folder does not exist fails in its engine fixture;
    # the reference cases of the same run are unaffected.
    suite.makepyprojecttoml(
        """
        [tool.codeeval.models.broken]
        hf_id = "nobody/none"
        kind = "chat"
        family = "x"
        dtype = "bfloat16"
        max_model_len = 1024
        source = "path"
        path = "/nonexistent/weights"
        """
    )
    result = suite.runpytest("-q", "--models", "broken", "--datasets", "reasoning_sample", "--samples", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ERROR*broken-reasoning_sample*"])
    report = json.loads((suite.path / "reports" / "comparisons" / "custom_balanced_comparison.json").read_text())
    assert report["cases"][0]["status"] == "error" and report["cases"][0]["error"]
