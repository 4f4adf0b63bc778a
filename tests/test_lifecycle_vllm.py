"""No engine outlives its run, with the real vLLM CPU engine on SmolLM2.

A pytest run of the suite is signalled while vLLM generates (seen from its
progress lines); afterwards no ``VLLM::EngineCore`` / ``VLLM::Worker`` of the
run may be left. Each engine gets all its cases' prompts in one submission,
so a run cut during an engine's call has finished the cases of the engines
before it. The first test is in the CI set (one engine load, about two
minutes here); the others load two or three engines and are marked slow.
The fast versions of all of them, with a fake engine, are in
test_lifecycle.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import psutil
import pytest

from lifecycle_helpers import (PROGRESS_RE, Run, engine_processes, latest_comparison,  # noqa: F401 (no_run_left: autouse)
                               no_run_left, poll_until, wait_all_gone)

LOAD_S = 1500  # an engine load takes 30-90 s here; 11 minutes was seen with other engines on the 2 cores
MODEL = "smollm2_135m_instruct"
DATASETS = ("reasoning_sample", "instruction_following_sample")
BASE = ["--engine", "vllm", "--models", MODEL, "--datasets", ",".join(DATASETS), "--samples", "6",
        "--max-new-tokens", "160", "--progress-interval", "1"]
TWO = [*BASE, "--preset", "memory_optimized,balanced"]  # two engines, loaded one after the other


def _generating(preset: str, with_eta: bool = False) -> str:
    """A progress line of this engine's call (with an ETA: some prompts have finished)."""
    return rf"codeeval {MODEL}@{preset}: generation \d+/12 prompts .*ETA " + (r"\d" if with_eta else "")


def _stored(report_dir: Path) -> int:
    """Generations in the run's store (0 before it exists)."""
    try:
        conn = sqlite3.connect(f"file:{report_dir / 'codeeval.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _engines_of(run: Run) -> list[psutil.Process]:
    found = engine_processes(run.descendants())
    assert found, "no VLLM::EngineCore / VLLM::Worker under the run"
    return found


def test_sigterm_during_real_generation_stops_like_ctrl_c(suite: pytest.Pytester) -> None:
    run = Run(suite.path, [*BASE, "--preset", "balanced"])
    run.wait_for(_generating("balanced", with_eta=True), timeout=LOAD_S)
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
    # In-call progress from the real engine: prompts, tokens/s and an ETA, on the terminal and in the run log.
    lines = [m for m in map(PROGRESS_RE.search, run.lines) if m]
    assert lines and all(float(m.group(5)) > 0 for m in lines[1:]), out[-4000:]
    assert any(m.group(7) != "--" for m in lines)
    log = next((suite.path / "reports" / "logs").glob("*.log")).read_text()
    assert PROGRESS_RE.search(log) and "SIGTERM received" in log
    assert f"{MODEL}@balanced: generation" in log and "stopped after" in log


@pytest.mark.slow
def test_sigterm_during_the_second_engine_reports_the_first_and_the_rerun_takes_it_from_the_store(
        suite: pytest.Pytester) -> None:
    run = Run(suite.path, TWO)
    run.wait_for(_generating("balanced"), timeout=2 * LOAD_S)
    engine = _engines_of(run)
    run.proc.send_signal(signal.SIGTERM)
    took, left = wait_all_gone(engine, timeout=120)
    assert run.wait(timeout=120) == 2 and not left, run.output[-4000:]
    # The partial reports hold the first engine's cases.
    report = latest_comparison(suite.path / "reports")
    assert sorted((c["preset"], c["dataset"]) for c in report["cases"]) == [("memory_optimized", d) for d in
                                                                            sorted(DATASETS)]
    # Their rerun comes from the store: no engine loads.
    rerun = Run(suite.path, [*BASE, "--preset", "memory_optimized"])
    assert rerun.wait(timeout=300) == 0, rerun.output[-4000:]
    for case in latest_comparison(suite.path / "reports")["cases"]:
        perf = case["performance"]
        assert (perf["generations_reused"], perf["generated"], perf["load_s"]) == (6, 0, None)


@pytest.mark.slow
def test_sigkill_during_real_generation_leaves_no_engine_and_the_rerun_completes(suite: pytest.Pytester) -> None:
    args = [*BASE, "--preset", "balanced"]
    run = Run(suite.path, args)
    run.wait_for(_generating("balanced"), timeout=LOAD_S)
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
    rerun = Run(suite.path, args)
    assert rerun.wait(timeout=LOAD_S + 300) == 0, rerun.output[-4000:]
    for case in latest_comparison(suite.path / "reports")["cases"]:
        assert case["status"] == "passed" and case["performance"]["generated"] == 6


@pytest.mark.slow
def test_an_engine_core_killed_mid_run_cuts_its_cases_short_and_the_next_engine_runs(suite: pytest.Pytester) -> None:
    """The out-of-memory killer's way: SIGKILL to VLLM::EngineCore during a generation. vLLM 0.32 alone
    would wait for that call forever; the engine's cases error with the reason instead, and the other
    preset's engine loads and runs."""
    run = Run(suite.path, TWO)
    run.wait_for(_generating("memory_optimized"), timeout=LOAD_S)
    core = engine_processes(_engines_of(run), ("VLLM::EngineCore",))
    t0 = time.monotonic()
    core[0].kill()
    run.wait_for(r"codeeval \[1/4\]", timeout=60)  # the first case reported (as an error)
    print(f"real engine, EngineCore killed: its cases errored {time.monotonic() - t0:.1f} s later")
    assert run.wait(timeout=LOAD_S + 300) == 1, run.output[-4000:]
    by = {(c["preset"], c["dataset"]): c for c in latest_comparison(suite.path / "reports")["cases"]}
    for dataset in DATASETS:
        dead = by[("memory_optimized", dataset)]
        assert dead["status"] == "error" and "killed by SIGKILL" in dead["cut_short"], dead
        assert by[("balanced", dataset)]["status"] == "passed"
    assert not engine_processes(run.descendants())


@pytest.mark.slow
def test_xdist_sigterm_to_the_process_group_ends_every_workers_engine(suite: pytest.Pytester) -> None:
    run = Run(suite.path, [*TWO, "-n", "2", "--dist", "loadgroup"], new_session=True)
    poll_until(lambda: len(engine_processes(run.descendants(), ("VLLM::EngineCore",))) == 2, 2 * LOAD_S,
               "both workers start an engine")
    engine = engine_processes(run.descendants())
    # An engine's call has returned (its generations are stored): its cases finish now. (The xdist
    # controller prints no per-case lines, so the store says it.)
    poll_until(lambda: _stored(suite.path / "reports") > 0, LOAD_S, "an engine's generations stored")
    time.sleep(5)  # its cases are scored and reported
    engine = [*engine, *engine_processes(run.descendants())]
    os.killpg(run.proc.pid, signal.SIGTERM)
    run.wait(timeout=180)
    took, left = wait_all_gone(engine, timeout=60)
    assert not left, f"{left}\n{run.output[-4000:]}"
    print(f"real engines under xdist, SIGTERM to the group: gone {took:.2f} s after the run exited")
    assert latest_comparison(suite.path / "reports")["cases"]  # the controller reported what had finished
