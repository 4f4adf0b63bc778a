"""The controller marks cases whose engine calls overlapped with another
engine's on a shared device (overlap.py)."""

from __future__ import annotations

from pytest_codeeval.overlap import mark_overlaps
from pytest_codeeval.results import CaseResult, Performance


def _case(model: str, preset: str, windows: list[list[float]] | None, devices: list[int] | None = None,
          host: str = "h") -> CaseResult:
    return CaseResult(case_id=f"{model}-{preset}", model=model, preset=preset, dataset="d",
                      performance=Performance(windows=windows, devices=devices, host=host))


def test_engines_sharing_the_cpu_at_the_same_time_are_marked() -> None:
    a, b, c = _case("m", "balanced", [[0, 10]]), _case("m", "performance", [[5, 20]]), _case("n", "x", [[30, 40]])
    mark_overlaps([a, b, c])
    assert a.performance.overlapped_with == ["m@performance"]
    assert b.performance.overlapped_with == ["m@balanced"]
    assert c.performance.overlapped_with == []  # ran alone afterwards


def test_disjoint_gpus_other_hosts_and_resumed_cases_are_not_marked() -> None:
    a, b = _case("m", "balanced", [[0, 10]], [0]), _case("m", "performance", [[0, 10]], [2])
    c = _case("n", "x", [[0, 10]], host="other")
    d = _case("k", "x", None)  # every sample came from the store: nothing timed in this run
    e = _case("j", "x", [[0, 10]], [0])  # shares GPU 0 with a
    mark_overlaps([a, b, c, d, e])
    assert b.performance.overlapped_with == [] and c.performance.overlapped_with == []
    assert d.performance.overlapped_with is None
    assert a.performance.overlapped_with == ["j@x"] and e.performance.overlapped_with == ["m@balanced"]
