"""Path options keep pytest's configuration: ``--report-dir=DIR`` works and
keeps the project's configfile and testpaths; ``--report-dir DIR`` (a space),
whose value pytest takes for a test path when it picks its rootdir, stops
the run with one line naming the fix (pytester runs of a project whose
pyproject.toml sets testpaths)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import BENCH_SOURCE


@pytest.fixture
def project(suite: pytest.Pytester) -> pytest.Pytester:
    """A user's project: the benchmark under benchmarks/ (its testpaths), and a
    test of its own under tests/ that a run of the benchmarks must not collect."""
    suite.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["benchmarks"]\n')
    (suite.path / "test_codeeval.py").unlink()
    (suite.path / "benchmarks").mkdir()
    (suite.path / "benchmarks" / "test_codeeval.py").write_text(BENCH_SOURCE)
    (suite.path / "tests").mkdir()
    (suite.path / "tests" / "test_own.py").write_text("def test_own():\n    pass\n")
    return suite


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the project, holding a file for each file option."""
    out = tmp_path_factory.mktemp("outside")
    for name in ("tasks.jsonl", "samples.jsonl", "catalog.toml", "store.sqlite", "baseline.json"):
        (out / name).write_text("")
    return out


RUN = ["--collect-only", "-m", "cpu_smoke", "--engine=reference"]


def assert_project_config(result: pytest.RunResult, project: pytest.Pytester) -> None:
    result.stdout.fnmatch_lines([f"rootdir: {project.path}", "configfile: pyproject.toml", "testpaths: benchmarks"])
    assert "test_own" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*6 tests collected*"])


@pytest.mark.parametrize("option", ["--report-dir", "--data-dir"])
def test_equals_form_keeps_the_configfile_and_testpaths(project: pytest.Pytester, outside: Path, option: str) -> None:
    result = project.runpytest(*RUN, f"{option}={outside}")
    assert result.ret == 0, result.stderr.str()
    assert_project_config(result, project)


@pytest.mark.parametrize(("option", "value"), [
    ("--report-dir", "."), ("--data-dir", "."), ("--datasets", "tasks.jsonl"), ("--completions", "samples.jsonl"),
    ("--catalog", "catalog.toml"), ("--store", "store.sqlite"), ("--baseline", "baseline.json"),
])
def test_space_form_stops_with_the_one_line_fix(project: pytest.Pytester, outside: Path, option: str, value: str) -> None:
    path = (outside / value).resolve()
    result = project.runpytest(*RUN, option, str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert f"from `{option} {path}`" in errors[0] and f"write {option}={path} (with '=', not a space)" in errors[0]
    assert f"instead of {project.path / 'pyproject.toml'}" in errors[0]
    # Before anything else happens: nothing collected, no plan written.
    assert "collected" not in result.stdout.str()
    assert not (project.path / "reports").exists() and not (outside / "plans").exists()


def test_space_form_inside_the_project_changes_nothing_and_passes(project: pytest.Pytester) -> None:
    (project.path / "reports").mkdir()
    result = project.runpytest(*RUN, "--report-dir", "reports")
    assert result.ret == 0, result.stderr.str()
    assert_project_config(result, project)


def test_space_form_of_a_path_that_does_not_exist_yet_passes(project: pytest.Pytester, outside: Path) -> None:
    result = project.runpytest(*RUN, "--report-dir", str(outside / "new"))
    assert result.ret == 0, result.stderr.str()
    assert_project_config(result, project)


def test_help_shows_the_equals_form_whatever_else_is_on_the_line(project: pytest.Pytester, outside: Path) -> None:
    result = project.runpytest("--help", "--report-dir", str(outside))
    assert result.ret == 0
    text = " ".join(result.stdout.str().split())  # as wrapped at any width
    assert "(write path options with '=', e.g. --report-dir=DIR: after a space, pytest may take the path" in text
    for option, meta in (("--report-dir", "DIR"), ("--data-dir", "DIR"), ("--catalog", "FILE"),
                         ("--completions", "FILE"), ("--store", "FILE"), ("--baseline", "FILE")):
        assert f"write {option}={meta}" in text
    assert "--datasets=tasks.jsonl" in text
