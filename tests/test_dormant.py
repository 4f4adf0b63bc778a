"""In other people's projects the plugin stays silent: no header line, no
sandbox probe, no catalog, no failure, unless the run uses the suite."""

from __future__ import annotations

import sys

import pytest

UNRELATED_TEST = "def test_unrelated():\n    assert 1 + 1 == 2\n"
HALF_WRITTEN = """
[tool.codeeval.models.my_coder]
hf_id = "me/my-coder"
kind = "chat"
"""


def _ours(output: str) -> list[str]:
    """Lines that mention the plugin, but pytest's own list of installed plugins."""
    # (the interpreter's own path may hold the word: a venv named after the project)
    return [ln for ln in output.splitlines()
            if "codeeval" in ln.replace(sys.prefix, "").lower() and not ln.startswith("plugins:")]


def _unrelated(pytester: pytest.Pytester, table: str = "") -> None:
    pytester.makepyfile(test_unrelated=UNRELATED_TEST)
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\naddopts = \"-p no:cacheprovider\"\n"
                               "markers = [\"fast: quick tests\"]\n" + table)


@pytest.mark.parametrize("table", ["", HALF_WRITTEN], ids=["no-table", "half-written-table"])
def test_an_unrelated_project_sees_no_trace_of_the_plugin(pytester: pytest.Pytester, table: str) -> None:
    _unrelated(pytester, table)
    result = pytester.runpytest_subprocess("-v")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    assert _ours(result.stdout.str() + result.stderr.str()) == []
    assert not (pytester.path / "reports").exists()


def test_an_unrelated_project_with_its_own_markers_stays_untouched(pytester: pytest.Pytester) -> None:
    _unrelated(pytester, HALF_WRITTEN)
    result = pytester.runpytest_subprocess("-m", "fast or not fast", "--strict-markers")
    assert result.ret == 0, result.stdout.str()
    assert _ours(result.stdout.str() + result.stderr.str()) == []


def test_the_plugin_wakes_when_a_run_names_the_suite(pytester: pytest.Pytester) -> None:
    """An option or a category marker wakes it; a broken table then is an error that names the fix."""
    _unrelated(pytester, HALF_WRITTEN)
    result = pytester.runpytest_subprocess("-m", "cpu_smoke")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *models.my_coder: missing field(s)*"])
    result = pytester.runpytest_subprocess("--preset=balanced", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_the_suites_test_function_wakes_it_at_collection(pytester: pytest.Pytester) -> None:
    """No option and no -m: the suite's fixtures in a collected test are enough (and a broken
    table is then a usage error raised after collection, not a collection error)."""
    pytester.makepyfile(test_codeeval="def test_codeeval(codeeval_case, codeeval_engine, codeeval_run):\n"
                                      "    codeeval_run(codeeval_case, codeeval_engine)\n")
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*6 cases: 1 model x 6 datasets, preset balanced*"])
    pytester.makepyprojecttoml(HALF_WRITTEN)
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *models.my_coder: missing field(s)*"])
