"""No engine outlives its run: SIGTERM is handled like Ctrl-C, SIGKILL leaves
the engine to the supervisor, a rerun ends what even the supervisor left,
and an engine that dies mid-run cuts its case short without stopping the run.

These tests use a fake engine (a pytester conftest) that starts two
processes the way vLLM does (one starts the other; neither ends unless
killed) and generates slowly, so that signals land during a generation. The
real-engine tests (vLLM on the CPU with SmolLM2) are in
test_lifecycle_vllm.py. Marked slow (CI's budget): the xdist variants other
than SIGTERM to the controller, two runs on one report dir, and -q."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lifecycle_helpers import PROGRESS_RE, Run, latest_comparison, no_run_left, poll_until, wait_all_gone  # noqa: F401 (no_run_left: autouse)
from pytest_codeeval.engines import lifecycle
from pytest_codeeval.engines.supervisor import start_time

FAKE_ENGINE = '''
import json, os, signal, subprocess, sys, time
from pytest_codeeval.engines import lifecycle
from pytest_codeeval.engines.base import EngineDied, ModelEngine
from pytest_codeeval.items import Generation
from pytest_codeeval.progress import current_sink
from pytest_codeeval.registry import ENGINES

DELAY = float(os.environ.get("FAKE_DELAY", "0.4"))  # seconds per prompt
# Like EngineCore starting a Worker: a process that starts another; neither ends unless killed
# (SIGTERM ignored: only the run's own close or the supervisor may end them).
CORE = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(900)']); time.sleep(900)")


class FakeProcessEngine(ModelEngine):
    kind = "fake"
    loads = 0
    warm_up_on_load = False

    def _load(self):
        FakeProcessEngine.loads += 1
        self.number = FakeProcessEngine.loads
        with lifecycle.watched_start(self.model.name + " (fake)") as self.watch:
            self.core = subprocess.Popen([sys.executable, "-c", CORE])
        time.sleep(0.5)  # the core starts its worker
        self.watch.adopt([self.core.pid])
        with open(os.environ["FAKE_PIDS"], "a") as f:
            f.write(json.dumps(sorted(self.watch.procs)) + "\\n")

    def generate(self, requests):
        if getattr(self, "dead", None):
            raise EngineDied("the engine died earlier in this run: " + self.dead)
        sink = current_sink()
        if sink is not None:
            sink.start(len(requests))
        rows = []
        try:
            for i, r in enumerate(requests):
                time.sleep(DELAY)
                if os.environ.get("FAKE_DIE") == str(self.number) and i == 1:
                    self.core.kill()  # what the out-of-memory killer does to EngineCore
                    self.dead = f"the engine core process {self.core.pid} was killed by SIGKILL"
                    raise EngineDied(self.dead)
                if sink is not None:
                    sink.advance(1, 25)
                rows.append([Generation(r.prompt.item_id, j, "#### 0", 5, 25, "stop") for j in range(r.sampling.n)])
        finally:
            if sink is not None:
                sink.finish()
        return rows

    def close(self):
        for pid in self.watch.procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.core.wait()
        self.watch.release()
        super().close()


ENGINES.register("vllm", FakeProcessEngine)
'''

# Two engines (presets), each given its cases' 12 prompts in one submission: a signal during the
# second engine's call finds the first engine's cases finished.
ARGS = ["--engine", "vllm", "--models", "smollm2_135m_instruct", "--preset", "balanced,memory_optimized",
        "--datasets", "reasoning_sample,function_calling_sample", "--samples", "6", "--progress-interval", "0.5"]
FIRST, SECOND = "smollm2_135m_instruct@balanced", "smollm2_135m_instruct@memory_optimized"


def _generating(engine: str) -> str:
    return rf"codeeval {engine}: generation \d+/12 prompts"


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return {"FAKE_PIDS": str(tmp / "pids.jsonl"), **extra}


def _engine_procs(tmp: Path) -> list[psutil.Process]:
    path = tmp / "pids.jsonl"
    procs = []
    for line in path.read_text().splitlines() if path.exists() else []:
        for pid in json.loads(line):
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
    return procs


def _supervisors_of(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and "supervisor.py" in " ".join(p.info["cmdline"])
            and p.info["cmdline"][-2:] == [str(pid), p.info["cmdline"][-1]]]


@pytest.fixture
def fake(suite: pytest.Pytester) -> pytest.Pytester:
    suite.makeconftest(FAKE_ENGINE)
    return suite


def test_sigkill_during_generation_ends_the_engine_processes(fake: pytest.Pytester) -> None:
    run = Run(fake.path, ARGS, _env(fake.path))
    run.wait_for(_generating(FIRST), timeout=120)
    engine = _engine_procs(fake.path)
    assert len(engine) == 2 and all(p.is_running() for p in engine)
    run.proc.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    took, left = wait_all_gone(engine, timeout=30)
    assert not left, f"engine processes outlived the SIGKILLed run: {left}"
    print(f"SIGKILL: engine processes gone {took:.2f} s after the kill")
    # The supervisor said what it did in the run log, removed the record, and exited.
    log = next((fake.path / "reports" / "logs").glob("*.log"))
    poll_until(lambda: "ended 2 process(es)" in log.read_text(), 10, "the supervisor's line in the run log")
    assert f"the pytest process {run.proc.pid} is gone" in log.read_text()
    assert not list((fake.path / "reports" / "engines").glob("*.json"))
    poll_until(lambda: not _supervisors_of(run.proc.pid), 10, "the supervisor exits")


def test_sigterm_is_handled_like_ctrl_c_and_the_rerun_resumes(fake: pytest.Pytester) -> None:
    run = Run(fake.path, ARGS, _env(fake.path))
    run.wait_for(_generating(SECOND), timeout=120)
    engine = _engine_procs(fake.path)
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    took, left = wait_all_gone(engine, timeout=60)
    code = run.wait(timeout=60)
    assert not left
    print(f"SIGTERM: engine processes gone {took:.2f} s after the signal, the run exited after "
          f"{time.monotonic() - t0:.2f} s")
    out = run.output
    assert code == 2, out[-3000:]  # pytest's "interrupted"
    assert "Terminated: SIGTERM" in out
    # The engine was closed by the run itself, not by the supervisor.
    log = next((fake.path / "reports" / "logs").glob("*.log")).read_text()
    assert "SIGTERM received" in log and "ended 2 process(es)" not in log
    # Partial reports: the first engine's cases, which finished, not the second's, cut by the signal.
    report = latest_comparison(fake.path / "reports")
    assert sorted((c["preset"], c["dataset"]) for c in report["cases"]) == [
        ("balanced", "function_calling_sample"), ("balanced", "reasoning_sample")]
    assert (fake.path / "reports" / "markdown").is_dir()
    # The rerun takes the finished cases from the store and generates the rest.
    rerun = Run(fake.path, ARGS, _env(fake.path))
    assert rerun.wait(timeout=120) == 0, rerun.output[-3000:]
    perf = {(c["preset"], c["dataset"]): c["performance"] for c in latest_comparison(fake.path / "reports")["cases"]}
    for dataset in ("reasoning_sample", "function_calling_sample"):
        assert (perf[("balanced", dataset)]["generations_reused"], perf[("balanced", dataset)]["generated"]) == (6, 0)
        assert perf[("memory_optimized", dataset)]["generated"] == 6


def test_a_rerun_ends_engines_left_when_even_the_supervisor_was_killed(fake: pytest.Pytester) -> None:
    run = Run(fake.path, ARGS, _env(fake.path, FAKE_DELAY="2.0"))
    run.wait_for(_generating(FIRST), timeout=120)
    engine = _engine_procs(fake.path)
    sups = _supervisors_of(run.proc.pid)
    assert len(sups) == 1
    sups[0].kill()  # e.g. a kill of every process of the user, in some order
    run.proc.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    time.sleep(1)
    assert all(p.is_running() for p in engine)  # nothing was left to end them
    records = list((fake.path / "reports" / "engines").glob("*.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    assert sorted(p["pid"] for p in rec["processes"]) == sorted(p.pid for p in engine)

    rerun = Run(fake.path, [*ARGS, "--preset", "balanced", "--datasets", "reasoning_sample"], _env(fake.path))
    m = rerun.wait_for(r"codeeval: ended (\d+) engine process\(es\) left by an earlier run", timeout=60)
    assert m.group(1) == "2"
    took, left = wait_all_gone(engine, timeout=10)
    assert not left
    assert rerun.wait(timeout=120) == 0, rerun.output[-3000:]
    # Said on the terminal (above) and in the run log; the record is gone.
    logs = "".join(p.read_text() for p in (fake.path / "reports" / "logs").glob("*.log"))
    assert "left by an earlier run" in logs and str(run.proc.pid) in logs
    assert not list((fake.path / "reports" / "engines").glob("*.json"))


@pytest.mark.slow
def test_a_run_in_progress_is_not_swept_by_another(fake: pytest.Pytester) -> None:
    """Two runs on one report dir: the second must not end the first's engine."""
    first = Run(fake.path, ARGS, _env(fake.path, FAKE_DELAY="3.0"))
    first.wait_for(_generating(FIRST), timeout=120)
    engine = _engine_procs(fake.path)
    second = Run(fake.path, [*ARGS, "--engine", "reference"], _env(fake.path))
    assert second.wait(timeout=120) == 0, second.output[-3000:]
    assert "left by an earlier run" not in second.output
    assert all(p.is_running() for p in engine)
    first.proc.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    assert not wait_all_gone(engine, timeout=30)[1]


def test_an_engine_that_dies_cuts_its_case_short_and_the_next_engine_runs(fake: pytest.Pytester) -> None:
    run = Run(fake.path, ARGS, _env(fake.path, FAKE_DIE="1", FAKE_DELAY="0.05"))
    assert run.wait(timeout=180) == 1, run.output[-3000:]
    report = latest_comparison(fake.path / "reports")
    by = {(c["preset"], c["dataset"]): c for c in report["cases"]}
    # One submission per engine: every case of the engine that died is cut short, with the reason.
    for dataset in ("reasoning_sample", "function_calling_sample"):
        dead = by[("balanced", dataset)]
        assert dead["status"] == "error"
        assert "killed by SIGKILL" in dead["cut_short"] and "killed by SIGKILL" in dead["error"]
    # Every case of the other engine ran.
    assert all(by[("memory_optimized", d)]["status"] == "passed"
               for d in ("reasoning_sample", "function_calling_sample"))
    md = next((fake.path / "reports" / "markdown").glob("*.md")).read_text()
    assert "Cut short (their engine died during the run)" in md and dead["case_id"] in md


@pytest.mark.parametrize("how", ["controller", pytest.param("group", marks=pytest.mark.slow)])
def test_xdist_sigterm_ends_every_workers_engine(fake: pytest.Pytester, how: str) -> None:
    args = [*ARGS, "-n", "2", "--dist", "loadgroup"]
    run = Run(fake.path, args, _env(fake.path, FAKE_DELAY="1.0"), new_session=True)
    poll_until(lambda: len(_engine_procs(fake.path)) == 4, 120, "both workers load an engine")
    engine = _engine_procs(fake.path)
    time.sleep(2)  # into the generations
    if how == "group":
        os.killpg(run.proc.pid, signal.SIGTERM)  # what batch schedulers do
    else:
        run.proc.send_signal(signal.SIGTERM)
    run.wait(timeout=90)
    took, left = wait_all_gone(engine, timeout=30)
    assert not left, f"{left}\n{run.output[-3000:]}"
    print(f"xdist SIGTERM to the {how}: engine processes gone {took:.2f} s after the run exited")
    assert "Terminated: SIGTERM" in run.output or "KeyboardInterrupt" in run.output


@pytest.mark.slow
def test_xdist_sigkill_of_the_controller_ends_every_workers_engine(fake: pytest.Pytester) -> None:
    args = [*ARGS, "-n", "2", "--dist", "loadgroup"]
    run = Run(fake.path, args, _env(fake.path, FAKE_DELAY="1.0"), new_session=True)
    poll_until(lambda: len(_engine_procs(fake.path)) == 4, 120, "both workers load an engine")
    engine = _engine_procs(fake.path)
    workers = psutil.Process(run.proc.pid).children()
    run.proc.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    took, left = wait_all_gone(engine, timeout=30)
    assert not left
    print(f"xdist SIGKILL of the controller: engine processes gone {took:.2f} s after the kill")
    _, workers_left = wait_all_gone(workers, timeout=30)
    assert not workers_left


def test_progress_lines_with_an_eta_where_there_is_no_terminal(fake: pytest.Pytester) -> None:
    run = Run(fake.path, [*ARGS, "--preset", "balanced", "--datasets", "reasoning_sample", "--samples", "8"],
              _env(fake.path))
    assert run.wait(timeout=120) == 0, run.output[-3000:]
    lines = [m for m in map(PROGRESS_RE.search, run.lines) if m]
    assert len(lines) >= 3, run.output[-3000:]
    done = [int(m.group(2)) for m in lines]
    assert done == sorted(done) and all(int(m.group(3)) == 8 for m in lines)
    assert any(m.group(7) != "--" for m in lines)  # an ETA once prompts finish
    assert float(lines[-1].group(5)) > 0
    assert any("generation 8/8 prompts (100%)" in x and "done in" in x for x in run.lines)
    log = next((fake.path / "reports" / "logs").glob("*.log")).read_text()
    assert PROGRESS_RE.search(log) and "generation 8/8 prompts (100%)" in log


@pytest.mark.slow
def test_quiet_runs_keep_progress_in_the_run_log_only(fake: pytest.Pytester) -> None:
    run = Run(fake.path, [*ARGS, "--preset", "balanced", "--datasets", "reasoning_sample", "-q"], _env(fake.path))
    assert run.wait(timeout=120) == 0, run.output[-3000:]
    assert not any(PROGRESS_RE.search(x) for x in run.lines)
    log = next((fake.path / "reports" / "logs").glob("*.log")).read_text()
    assert PROGRESS_RE.search(log)


def test_the_guard_stays_out_of_runs_that_do_not_use_the_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_x():\n    import signal\n    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL\n")
    result = pytester.runpytest_subprocess("test_plain.py", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    assert not (pytester.path / "reports" / "engines").exists()


def test_the_previous_sigterm_handler_comes_back(suite: pytest.Pytester) -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        # In process: while the suite runs the handler is the guard's, then ours again.
        suite.makepyfile(test_zz_check='''
import signal
def test_handler_is_the_guards():
    assert "RunGuard" in repr(signal.getsignal(signal.SIGTERM))
''')
        result = suite.runpytest_inprocess("--engine", "reference", "--datasets", "reasoning_sample", "--samples",
                                           "2", "test_codeeval.py", "test_zz_check.py")
        assert result.ret == 0, result.stdout.str()[-3000:]
        result.assert_outcomes(passed=2)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- the sweep on its own ---------------------------------------------------------


def _sleeper(token: str | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop(lifecycle.TOKEN_ENV, None)
    if token:
        env[lifecycle.TOKEN_ENV] = token
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], env=env)


def _record(path: Path, token: str, owner: int, owner_start: int | None, procs: list[subprocess.Popen],
            start_offset: int = 0, **extra: str) -> None:
    rec = {"token": token, "label": "m (test)", "run_id": "r1", "host": socket.gethostname(),
           "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
           "owner": {"pid": owner, "start": owner_start, "cmd": "pytest"},
           "processes": [{"pid": p.pid, "start": start_time(p.pid) + start_offset, "cmd": "x"} for p in procs],
           "written_at": "then", **extra}
    path.write_text(json.dumps(rec))


def _dead_pid() -> tuple[int, int]:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    start = start_time(p.pid)
    p.wait()
    return p.pid, start


def test_sweep_ends_what_a_dead_owner_left_and_nothing_else(tmp_path: Path) -> None:
    dead, dead_start = _dead_pid()
    by_token, listed, reused, foreign, live_owned = _sleeper("tok-a"), _sleeper(), _sleeper(), _sleeper(), _sleeper()
    try:
        time.sleep(0.3)
        # A dead owner's engine: found by its token and by its recorded pid.
        _record(tmp_path / "a.json", "tok-a", dead, dead_start, [listed])
        # A recorded pid whose start time differs: the pid was reused by another process.
        _record(tmp_path / "b.json", "tok-b", dead, dead_start, [reused], start_offset=-100)
        # Another host's record (a shared file system).
        _record(tmp_path / "c.json", "tok-c", dead, dead_start, [foreign], host="elsewhere")
        # A run in progress: its owner lives.
        _record(tmp_path / "d.json", "tok-d", os.getpid(), start_time(os.getpid()), [live_owned])
        lines = lifecycle.sweep(tmp_path)
        assert len(lines) == 1 and "ended 2 engine process(es)" in lines[0] and f"pytest pid {dead}" in lines[0]
        assert by_token.wait(5) == -signal.SIGKILL and listed.wait(5) == -signal.SIGKILL
        assert all(p.poll() is None for p in (reused, foreign, live_owned))
        assert sorted(p.name for p in tmp_path.glob("*.json")) == ["c.json", "d.json"]
    finally:
        for p in (by_token, listed, reused, foreign, live_owned):
            p.kill()
            p.wait()
