"""GPU placement and data parallel, tested without CUDA: --gpus assigns and
records devices all the same (placement.py), with the reference engine."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pytest_codeeval.errors import CodeevalError
from pytest_codeeval.placement import Placement, parse_gpus
from pytest_codeeval.scheduling import case_id_of


def _cases(root: Path, stem: str) -> list[dict]:
    return json.loads((root / "reports" / "comparisons" / f"{stem}_comparison.json").read_text())["cases"]


def test_each_worker_gets_its_own_equal_slice() -> None:
    gpus = parse_gpus("0,1,2,3")
    assert [Placement.for_worker(gpus, i, 2).devices for i in range(2)] == [("0", "1"), ("2", "3")]
    assert Placement.for_worker(gpus, 2, 3).devices == ("2",)  # 4 // 3 = 1 each; GPU 3 stays unused
    with pytest.raises(CodeevalError, match=r"4 xdist workers but 2 GPU\(s\).*-n 2 or fewer"):
        Placement.for_worker(parse_gpus("0,1"), 0, 4)
    with pytest.raises(CodeevalError, match="listed twice"):
        parse_gpus("0,0")
    assert parse_gpus("none") == [] and Placement.for_worker([], 0, 2).for_engine(2, 1) == [[]]


def test_a_model_that_needs_more_gpus_than_a_worker_has_is_a_usage_error() -> None:
    p = Placement.for_worker(parse_gpus("0,1,2,3"), 0, 2)
    p.check("m", 2, 1)
    with pytest.raises(CodeevalError, match=r"model 'm' needs 4 GPU\(s\).*each of the 2 xdist workers has 2 of the 4"
                                            r".*-n 1"):
        p.check("m", 2, 2)
    assert p.for_engine(1, 2) == [["0"], ["1"]]


def test_case_ids_come_out_of_node_ids() -> None:
    assert case_id_of("benchmarks/test_codeeval.py::test_codeeval[m@x-balanced-d]") == "m@x-balanced-d"
    assert case_id_of("tests/test_a.py::test_a") is None


def test_two_xdist_workers_run_their_engines_on_disjoint_devices(suite: pytest.Pytester) -> None:
    """The issue's command: each model x preset on one worker (one engine call each), disjoint devices."""
    result = suite.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-m", "cpu_smoke", "--engine=reference",
                                        "-n", "2", "--dist=loadgroup", "--preset=balanced,performance",
                                        "--gpus=0,1,2,3", "--samples=2")
    assert result.ret == 0, result.stdout.str()
    cases = _cases(suite.path, "cpu_smoke_balanced+performance")
    devices = {p: {tuple(c["performance"]["devices"]) for c in cases if c["preset"] == p}
               for p in ("balanced", "performance")}
    assert all(len(d) == 1 for d in devices.values()), devices  # each preset's cases: one engine
    assert set(devices["balanced"]) != set(devices["performance"])
    assert {d for ds in devices.values() for (d,) in ds} <= {0, 2}  # the first device of each worker's slice
    calls = sqlite3.connect(suite.path / "reports" / "codeeval.sqlite").execute(
        "SELECT model, requests FROM calls").fetchall()
    assert sorted(calls) == [("reference@balanced", 12), ("reference@performance", 12)]  # one submission each


def test_too_many_gpus_asked_is_a_usage_error_before_anything_runs(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine=reference", "--datasets=reasoning_sample",
                                        "--samples=1", "--gpus=0,1", "--data-parallel=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: model 'reference' needs 3 GPU(s)*this run has 2 GPU(s) (0,1)*--data-parallel*"])
    assert not (suite.path / "reports" / "codeeval.sqlite").exists()


def test_data_parallel_replicas_split_the_prompts(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--engine=reference",
                                        "--datasets=reasoning_sample,humaneval", "--samples=5", "--gpus=0,1",
                                        "--data-parallel=2")
    assert result.ret == 0, result.stdout.str()
    cases = _cases(suite.path, "custom_balanced")
    assert all(c["score"] == 1.0 and c["performance"]["devices"] == [0, 1] for c in cases)
    assert cases[0]["engine"]["data_parallel"] == 2 and cases[0]["engine"]["replica_devices"] == [["0"], ["1"]]


@pytest.mark.slow
def test_data_parallel_with_two_real_vllm_engines(suite: pytest.Pytester) -> None:
    """Two vLLM (CPU) replicas of SmolLM2 in one process, each with its own engine core, split a case's prompts."""
    result = suite.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--models=smollm2_135m_instruct",
                                        "--datasets=reasoning_sample", "--samples=4", "--max-new-tokens=24",
                                        "--data-parallel=2", timeout=1500)
    assert result.ret == 0, result.stdout.str()[-3000:]
    (case,) = _cases(suite.path, "custom_balanced")
    assert case["engine"]["data_parallel"] == 2 and case["engine"]["kind"] == "vllm"
    assert case["performance"]["completion_tokens"] > 0 and case["performance"]["tokens_per_s"] > 0
