"""The typed results and the pieces around them: the JSON Schema describes
exactly the CaseResult fields, results survive the trip through plain data
(xdist), the collector builds results from (fake) reports, metrics keep
samples the harness could not judge out of n, and the registry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_codeeval import metrics as m
from pytest_codeeval.collector import ResultCollector
from pytest_codeeval.errors import CatalogError
from pytest_codeeval.items import Item, Verdict
from pytest_codeeval.registry import SCORERS, Registry
from pytest_codeeval.report.comparison import load_schema
from pytest_codeeval.results import CaseResult, Performance, SampleRow, case_fields, performance_fields


def test_the_schema_describes_exactly_the_case_result_fields() -> None:
    case = load_schema()["$defs"]["case"]
    assert set(case["properties"]) == set(case_fields())
    assert set(case["properties"]["performance"]["properties"]) == set(performance_fields())


def test_a_result_survives_the_trip_through_plain_data() -> None:
    result = CaseResult(case_id="m-d", model="m", preset="balanced", dataset="d", score=0.5,
                        metrics={"accuracy": 0.5}, item_scores={"a": 1.0, "b": 0.0},
                        performance=Performance(completion_tokens=7, tokens_per_s=None, load_s=1.5),
                        samples=[SampleRow(task_id="a", sample=0, passed=True, verdict="passed")])
    data = json.loads(json.dumps(result.to_dict()))  # builtin types only
    assert CaseResult.from_dict(data) == result
    assert "samples" not in result.to_dict(samples=False)


@dataclass
class FakeReport:
    """What the collector reads of a pytest TestReport (as pytest-xdist tests its DSession)."""

    codeeval_case: dict[str, Any] | None
    failed: bool = False
    codeeval_result: dict[str, Any] | None = None
    longreprtext: str = ""
    when: str = "call"
    extra: dict[str, Any] = field(default_factory=dict)


CASE = {"id": "m-d", "model": "m", "preset": "balanced", "dataset": "d", "categories": ["c"]}


def _collector() -> tuple[ResultCollector, dict[str, CaseResult]]:
    results: dict[str, CaseResult] = {}
    return ResultCollector(lambda r: results.__setitem__(r.case_id, r), lambda cid: cid in results), results


def test_the_collector_keeps_results_and_turns_a_failed_setup_into_an_error_case() -> None:
    collector, results = _collector()
    collector.pytest_runtest_logreport(FakeReport(None))  # not one of ours
    assert results == {}
    collector.pytest_runtest_logreport(FakeReport(
        CASE, failed=True, when="setup",
        longreprtext="...\nE   pytest_codeeval.errors.EngineError: vLLM could not load model 'm'\nE   (details)\n"))
    assert results["m-d"].status == "error" and "could not load model" in (results["m-d"].error or "")
    assert results["m-d"].categories == ["c"] and results["m-d"].score is None
    # the teardown of the same case fails too: the first reason stays
    collector.pytest_runtest_logreport(FakeReport(CASE, failed=True, when="teardown", longreprtext="E   other"))
    assert "could not load" in (results["m-d"].error or "")


def test_the_collector_rebuilds_a_typed_result_from_a_report() -> None:
    collector, results = _collector()
    done = CaseResult(case_id="m-d", model="m", preset="balanced", dataset="d", score=1.0)
    collector.pytest_runtest_logreport(FakeReport(CASE, codeeval_result=done.to_dict()))
    assert results["m-d"] == done


def _v(item: str, passed: bool, kind: str | None = None, **scores: float) -> Verdict:
    return Verdict(item, 0, passed, kind or ("passed" if passed else "failed"), scores=dict(scores))


def test_samples_the_harness_could_not_judge_are_out_of_n() -> None:
    items = [Item(id=i, task_type="code", prompt="", reference="") for i in "abc"]
    rows = [[_v("a", True)], [_v("b", False, "sandbox_error")], [_v("c", False)]]
    metrics = m.compute_all((m.pass_at_k(), m.count(("sandbox_error",), "sandbox_errors")), items, rows, (1,))
    assert metrics == {"pass@1": 0.5, "sandbox_errors": 1.0}
    assert m.item_scores((m.pass_at_k(),), "pass@1", items, rows, (1,)) == {"a": 1.0, "c": 0.0}


def test_instruction_level_accuracy_keeps_the_instructions_of_an_unclosed_think_reply() -> None:
    from pytest_codeeval.items import Generation
    from pytest_codeeval.scoring.base import ScoreContext
    from pytest_codeeval.scoring.ifeval import IfevalScorer

    item = Item(id="i", task_type="instruction_following", prompt="", reference="",
                data={"instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
                      "kwargs": [{}, {}]})
    scorer = IfevalScorer()
    gens = [[Generation("i", 0, "all lowercase and no commas here"),
             Generation("i", 1, "<think>still thinking about it")]]
    ctx = ScoreContext(chat=True)
    verdicts = scorer.score_generations([item], gens, ctx)
    assert [v.verdict for v in verdicts[0]] == ["passed", "no_answer"]
    metrics = scorer.aggregate([item], verdicts, ctx)
    assert metrics["inst_level_strict_acc"] == 0.5 and metrics["prompt_level_strict_acc"] == 0.5


def test_the_registry_says_what_it_knows_and_takes_registrations() -> None:
    with pytest.raises(CatalogError, match=r"unknown scorer 'gsm9k'\. Did you mean gsm8k\?.*pytest_codeeval\.scorers"):
        SCORERS.get("gsm9k")
    reg = Registry("thing", "things", {"a": "json:dumps"})
    assert reg.get("a") is json.dumps
    reg.register("b", len)
    assert reg.get("b") is len and reg.names() == ["a", "b"] and "b" in reg
