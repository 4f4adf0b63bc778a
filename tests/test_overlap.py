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


# -- the reports and the gate under overlap -----------------------------------------------------------

def _two_presets(overlap: bool) -> list:
    from synthetic import case

    cases = [case("m", d, preset=p, multi=True, seed=1, tokens_per_s=tps)
             for p, tps in (("balanced", 50.0), ("performance", 4.0)) for d in ("humaneval", "mbpp")]
    for c in cases:
        c.performance.windows = [[0.0, 10.0]] if overlap else [[0.0, 10.0] if c.preset == "balanced" else [20.0, 30.0]]
        c.performance.host, c.performance.memory_kind = "h", "cpu_rss"
    mark_overlaps(cases)
    return cases


def test_overlapping_presets_get_no_speed_claim_and_are_flagged(tmp_path) -> None:
    from synthetic import write

    out = write(_two_presets(overlap=True), tmp_path, presets=["balanced", "performance"])
    comp = out["comparison"]
    assert set(comp["timing"]["overlapped"]) == {c["case_id"] for c in comp["cases"]}
    assert all(r["tokens_per_s"] is None and r["overlapped_with"]
               for r in comp["presets_compared"]["m"].values())
    assert "faster" not in comp["recommendation"] and "tokens/s" not in comp["recommendation"]
    assert "was measured while another engine shared their devices (⚠), so speed cannot break the tie" \
        in comp["recommendation"]
    plots = {p.name for p in out["paths"]["plots"].iterdir()}
    assert not any("throughput" in p or "score_vs_speed" in p for p in plots)
    md = out["paths"]["markdown"].read_text()
    assert "50.0 ⚠" in md and "not comparable" in md and "--gpus" in md


def test_presets_run_one_after_another_are_compared_normally(tmp_path) -> None:
    from synthetic import write

    out = write(_two_presets(overlap=False), tmp_path, presets=["balanced", "performance"])
    comp = out["comparison"]
    assert comp["timing"]["overlapped"] == {}
    speeds = {p: r["tokens_per_s"] for p, r in comp["presets_compared"]["m"].items()}
    assert speeds == {"balanced": 50.0, "performance": 4.0}
    assert "⚠" not in out["paths"]["markdown"].read_text().split("## Performance")[1].split("## Presets")[0]


def test_the_throughput_gate_skips_shared_timings() -> None:
    from pytest_codeeval.gating import GateOptions, check_case

    now = _two_presets(overlap=False)[0]
    baseline = {("m", "balanced", "humaneval"): now.to_dict(samples=False)}  # the same case at 50 tokens/s
    now.performance.tokens_per_s = 10.0
    gate = GateOptions(baseline=baseline, baseline_path="b.json", max_score_drop=0.05, min_score=None,
                       max_throughput_drop=0.3)
    assert [f["kind"] for f in check_case(now, gate) if f["regression"]] == ["throughput"]
    kinds = [f["kind"] for f in check_case(now, gate, shared_timing=True)]
    assert "throughput" not in kinds and "throughput_not_gated" in kinds


def test_an_engine_loading_keeps_its_devices_busy() -> None:
    """Measured: a preset compiling on one xdist worker (no generation yet) held
    the other worker's engine to 29 tokens/s against ~115 alone. The load is part
    of an engine's busy windows, so that case is flagged too."""
    import time
    from types import SimpleNamespace

    from pytest_codeeval.engines.base import Engine
    from pytest_codeeval.runner import busy_windows

    class SlowLoad(Engine):
        kind = "slow-load"

        def _load(self) -> None:
            time.sleep(0.05)

        def generate(self, requests):  # pragma: no cover - not called
            return []

    engine = SlowLoad("m")
    before = time.time()
    engine.load()
    start, end = engine.stats.load_window
    assert before <= start and end - start >= 0.05 and end <= time.time()
    call = SimpleNamespace(started_at=end + 1.0, wall_s=2.0)
    assert busy_windows([call], engine.stats.load_window) == [[round(start, 3), round(end, 3)],
                                                               [round(end + 1.0, 3), round(end + 3.0, 3)]]
    assert busy_windows([], engine.stats.load_window) is None  # every sample from the store: nothing timed here
    # the other worker generated while this one compiled: both figures are flagged
    compiling = _case("m", "performance", [[0, 100], [100, 110]])
    generating = _case("m", "balanced", [[50, 60]])
    mark_overlaps([compiling, generating])
    assert generating.performance.overlapped_with == ["m@performance"]
    assert compiling.performance.overlapped_with == ["m@balanced"]
