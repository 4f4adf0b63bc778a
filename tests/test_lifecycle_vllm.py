"""No engine outlives its run, with the real vLLM CPU engine on SmolLM2.

A pytest run of the suite is signalled while vLLM generates (seen from its
progress lines); afterwards no ``VLLM::EngineCore`` / ``VLLM::Worker`` of the
run may be left. The first test is in the CI set (one engine load, about two
minutes here); the others load two or three engines and are marked slow.
The fast versions of all of them, with a fake engine, are in
test_lifecycle.py."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from lifecycle_helpers import PROGRESS_RE, Run, engine_processes, poll_until, wait_all_gone

LOAD_S = 600  # an engine load takes 30-90 s here, more on a busy machine
BASE = ["--engine", "vllm", "--models", "smollm2_135m_instruct", "--samples", "6", "--max-new-tokens", "160",
        "--progress-interval", "1"]
FIRST, SECOND = "reasoning_sample", "instruction_following_sample"
ARGS = [*BASE, "--datasets", f"{FIRST},{SECOND}"]


def _comparison(report_dir: Path) -> dict:
    return json.loads(next((report_dir / "comparisons").glob("*_comparison.json")).read_text())


def _generating(case: str) -> str:
    return rf"codeeval \S+-{case}: generation \d+/\d+ prompts"


def _engines_of(run: Run) -> list[psutil.Process]:
    found = engine_processes(run.descendants())
    assert len(found) >= 1, "no VLLM::EngineCore / VLLM::Worker under the run"
    return found


def test_sigterm_during_real_generation_stops_like_ctrl_c(suite: pytest.Pytester) -> None:
    run = Run(suite.path, ARGS)
    run.wait_for(_generating(SECOND), timeout=LOAD_S)
    engine = _engines_of(run)
    names = ", ".join(p.name() for p in engine)
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    took, left = wait_all_gone(engine, timeout=120)
    code = run.wait(timeout=120)
    exited = time.monotonic() - t0
    assert not left, f"engine processes outlived the run: {left}"
    print(f"real engine, SIGTERM: its engine processes ({names}) gone {took:.1f} s after the signal, "
          f"the run exited after {exited:.1f} s")
    out = run.output
    assert code == 2 and "Terminated: SIGTERM" in out, out[-4000:]
    # In-call progress from the real engine: lines with prompts, tokens/s and an ETA, also in the run log.
    lines = [m for m in map(PROGRESS_RE.search, run.lines) if m]
    assert lines and all(float(m.group(5)) >= 0 for m in lines), out[-4000:]
    assert any(f"-{FIRST}: generation 6/6 prompts (100%)" in x and "done in" in x for x in run.lines)
    log = next((suite.path / "reports" / "logs").glob("*.log")).read_text()
    assert PROGRESS_RE.search(log) and "SIGTERM received" in log
    # The partial reports hold the finished case.
    assert [c["dataset"] for c in _comparison(suite.path / "reports")["cases"]] == [FIRST]
    # Its rerun comes from the store: no engine loads.
    rerun = Run(suite.path, [*BASE, "--datasets", FIRST])
    assert rerun.wait(timeout=300) == 0, rerun.output[-4000:]
    case = _comparison(suite.path / "reports")["cases"][0]
    assert case["performance"]["generations_reused"] == 6 and case["performance"]["generated"] == 0
    assert "VLLM::EngineCore" not in rerun.output


@pytest.mark.slow
def test_sigkill_during_real_generation_leaves_no_engine_and_the_rerun_completes(suite: pytest.Pytester) -> None:
    run = Run(suite.path, ARGS)
    run.wait_for(_generating(SECOND), timeout=LOAD_S)
    engine = _engines_of(run)
    rss = sum(p.memory_info().rss for p in engine)
    run.proc.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    took, left = wait_all_gone(engine, timeout=30)
    assert not left, f"engine processes outlived the SIGKILLed run: {left}"
    print(f"real engine, SIGKILL: {len(engine)} engine processes ({rss / 2**30:.1f} GiB RSS) gone {took:.2f} s "
          "after the kill")
    log = next((suite.path / "reports" / "logs").glob("*.log"))
    poll_until(lambda: "VLLM::EngineCore" in log.read_text(), 10, "the supervisor's line in the run log")
    rerun = Run(suite.path, ARGS)
    assert rerun.wait(timeout=LOAD_S + 300) == 0, rerun.output[-4000:]
    cases = {c["dataset"]: c["performance"] for c in _comparison(suite.path / "reports")["cases"]}
    assert cases[FIRST]["generations_reused"] == 6 and cases[FIRST]["generated"] == 0
    assert cases[SECOND]["generated"] == 6


@pytest.mark.slow
def test_an_engine_core_killed_mid_run_cuts_its_cases_short_and_the_next_engine_runs(suite: pytest.Pytester) -> None:
    """The out-of-memory killer's way: SIGKILL to VLLM::EngineCore during a generation. vLLM 0.32 alone
    would wait for that call forever; the case errors with the reason instead, the engine's later case
    is cut short too, and the other preset's engine loads and runs."""
    run = Run(suite.path, [*ARGS, "--preset", "memory_optimized,balanced"])
    run.wait_for(_generating(FIRST), timeout=LOAD_S)
    core = engine_processes(_engines_of(run), ("VLLM::EngineCore",))
    core[0].kill()
    assert run.wait(timeout=LOAD_S + 300) == 1, run.output[-4000:]
    by = {(c["preset"], c["dataset"]): c for c in _comparison(suite.path / "reports")["cases"]}
    first = by[("memory_optimized", FIRST)]
    assert first["status"] == "error" and "killed by SIGKILL" in first["cut_short"], first
    assert by[("memory_optimized", SECOND)]["cut_short"]  # refused: the engine died earlier
    assert by[("balanced", FIRST)]["status"] == "passed" and by[("balanced", SECOND)]["status"] == "passed"
    assert not engine_processes(run.descendants())


@pytest.mark.slow
def test_xdist_sigterm_to_the_process_group_ends_every_workers_engine(suite: pytest.Pytester) -> None:
    run = Run(suite.path, [*ARGS, "--preset", "memory_optimized,balanced", "-n", "2", "--dist", "loadgroup"],
              new_session=True)
    poll_until(lambda: len(engine_processes(run.descendants(), ("VLLM::EngineCore",))) == 2, LOAD_S,
               "both workers start an engine")
    # Workers write their progress to the run log (a worker's terminal is not the user's): one case
    # done, the next one generating.
    log = suite.path / "reports" / "logs"
    poll_until(lambda: any(PROGRESS_RE.search(line) and f"-{SECOND}:" in line
                           for p in log.glob("*.log") for line in p.read_text().splitlines()), LOAD_S,
               "a second case generating")
    engine = engine_processes(run.descendants())
    os.killpg(run.proc.pid, signal.SIGTERM)
    run.wait(timeout=180)
    took, left = wait_all_gone(engine, timeout=60)
    assert not left, f"{left}\n{run.output[-4000:]}"
    print(f"real engines under xdist, SIGTERM to the group: gone {took:.2f} s after the run exited")
    # The controller reported what had finished.
    assert any(c["dataset"] == FIRST for c in _comparison(suite.path / "reports")["cases"])
