"""The judge: runs the dataset's tests in the trusted process, the sample in the sandbox.

The test code runs here, always; ``candidate`` (and the entry point's name,
which MBPP-style tests call) stands for the program's function, and the
program's other names the test uses stand for its objects (see remote.py).
No verdict is made inside the sandbox, and nothing the sample sends decides
a verdict's kind except through the judge's own reading of it:

  passed        the test ran to its end
  failed        an assertion of the test failed, the test raised, the
                candidate raised (also a control-flow exception such as
                StopIteration, which the test cannot catch), the program
                did not load, or the sample sent something the judge refuses
  timeout       a deadline passed (the whole sandbox is then killed from outside)
  memory        the candidate raised MemoryError, or the kernel killed it at
                the memory limit (the cgroup's OOM counter says so)
  crashed       the sample process died (its exit code is in the detail)
  unverified    the test needed something only the sample could answer
                (whether its object equals a value, ...) or that cannot cross:
                never a pass, counted apart with its reason
  sandbox_error the sandbox itself failed (the server says so on its control
                channel); retried once on a fresh server

The sample's output is captured: its size and first part are kept for the
sample's log, never judged.
"""

from __future__ import annotations

import builtins
import dis
import functools
import time
import traceback
import types
from dataclasses import dataclass, field
from typing import Any

from .limits import Limits, TimeLimits, Timing
from .remote import (Broken, SampleDied, SampleEnded, SampleSignal, Session, Timeout, Unverified)
from .worker import SandboxBroken, Worker

VERDICTS = ("passed", "failed", "timeout", "memory", "crashed", "unverified", "sandbox_error")


@dataclass(frozen=True)
class SampleJob:
    """One program to judge. ``helpers`` is trusted code (the dataset's prompt)
    whose definitions the tests may use (HumanEval/32's poly, /38's encode_cyclic)."""

    program: str
    entry_point: str
    test: str
    setup: str = ""
    helpers: str = ""
    time_limits: TimeLimits = field(default_factory=lambda: TimeLimits(3.0, 1.0, 6.0))


@dataclass
class Outcome:
    verdict: str  # one of VERDICTS
    detail: str = ""
    seconds: float = 0.0
    timing: Timing | None = None  # only for a passing run judged with measure=True: what calibration uses
    output_bytes: int = 0  # what the sample wrote to stdout/stderr
    output_head: str = ""  # its first part (sample log)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


def safe_text(text: str, limit: int | None = None) -> str:
    """A string from a sample, made fit for a verdict, the store and a report:
    lone surrogates (which UTF-8 cannot encode) and NULs replaced."""
    if limit is not None:
        text = text[:limit]
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\\x00")


def _str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:  # e.g. a message built from an object of a sample already gone
        return "<unprintable>"


def _failing_line(exc: BaseException, source: str, filename: str) -> str:
    """The text of the deepest line of ``filename`` in the traceback."""
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno or 0
    lines = source.splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _describe_failure(exc: BaseException, test: str) -> str:
    where = _failing_line(exc, test, "<test>")
    msg = _str(exc)
    if getattr(exc, "_codeeval_candidate", False):  # before AssertionError: the candidate may raise one too
        return f"candidate raised {type(exc).__name__}: {msg[:200]}" + (f" at: {where}" if where else "")
    if isinstance(exc, AssertionError):
        return f"assertion failed: {where}" + (f" ({msg[:200]})" if msg else "")
    return f"test raised {type(exc).__name__}: {msg[:200]}" + (f" at: {where}" if where else "")


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, filename: str) -> Any:
    """Compile trusted dataset code once per item, not once per sample; None if it is prose."""
    try:
        return compile(source, filename, "exec")
    except SyntaxError:
        if filename == "<helpers>":
            return None  # an MBPP-style prompt is prose, not code
        raise


_GLOBAL_LOADS = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"}


@functools.lru_cache(maxsize=4096)
def _global_names(test: str) -> tuple[str, ...]:
    """Every name the test's code reads as a global (in any function it defines), builtins left out."""
    names: set[str] = set()
    stack = [_compiled(test, "<test>")]
    while stack:
        code = stack.pop()
        for ins in dis.get_instructions(code):
            if ins.opname in _GLOBAL_LOADS and isinstance(ins.argval, str):
                names.add(ins.argval)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return tuple(sorted(n for n in names if not hasattr(builtins, n)))


def _trusted_namespace(job: SampleJob) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "__judge__"}
    if job.setup:
        exec(_compiled(job.setup, "<test_setup>"), ns)
    if job.helpers:
        code = _compiled(job.helpers, "<helpers>")
        if code is not None:
            try:
                exec(code, ns)
            except Exception:
                pass  # helpers are a convenience; the tests say if they needed them
    exec(_compiled(job.test, "<test>"), ns)
    return ns


def _program_names(job: SampleJob, ns: dict[str, Any]) -> list[str]:
    """Names the test reads that neither the test's side nor Python defines:
    the program's (MBPP 367's tests build trees of the program's Node)."""
    return [n for n in _global_names(job.test) if n not in ns and n != job.entry_point]


def _run_test(job: SampleJob, session: Session, ns: dict[str, Any], measure: bool) -> Outcome | None:
    """The test's own result (None when a SampleSignal ended it: the session holds that)."""
    check = ns.get("check")  # before binding: a solution may itself be named check (MBPP 56, 349)
    if not callable(check):
        return Outcome("unverified", "the dataset's test defines no check(candidate) function")
    want = _program_names(job, ns)
    try:
        if want or measure:
            ns.update(session.load(want))
        ns[job.entry_point] = session.entry
        check(session.entry)
        result = Outcome("passed")
    except SampleSignal:
        return None
    except BaseException as e:  # the test's own SystemExit or GeneratorExit too: it failed
        result = Outcome("failed", _describe_failure(e, job.test))
    if session.channel is None and session.ended is None:
        # the test decided without asking the sample anything: the program must still load
        try:
            session.load([])
        except SampleSignal:
            return None
    return result


def _from_death(reply: dict[str, Any], oom_kills: int) -> Outcome:
    """The sample process died on its own (or was killed by the kernel)."""
    if oom_kills:
        return Outcome("memory", "killed by the kernel at the memory limit")
    exit_code = (reply.get("status") or {}).get("exit")
    how = f"killed by signal {-exit_code}" if isinstance(exit_code, int) and exit_code < 0 else f"exited with code {exit_code}"
    return Outcome("crashed", f"the sample {how} before the test ended")


def judge_sample(worker: Worker, job: SampleJob, limits: Limits, measure: bool = False) -> Outcome:
    """Judge one sample on ``worker``.  Raises SandboxBroken when the sandbox failed.

    ``measure``: time the program's loading and each call on their own (the
    job goes first, then every request; calibration runs of references)."""
    tl = job.time_limits
    start = time.monotonic()
    try:
        ns = _trusted_namespace(job)
    except Exception as e:  # the dataset's code, not the sample: never run the sample against it
        return Outcome("unverified", f"the dataset's test code does not run: {type(e).__name__}: {_str(e)[:200]}")
    session = Session(worker, {"program": job.program, "setup": job.setup, "entry_point": job.entry_point}, tl, start)
    result = _run_test(job, session, ns, measure)
    signal = session.ended
    if isinstance(signal, Broken):
        worker.kill()
        raise SandboxBroken(signal.detail)
    if isinstance(signal, Timeout):
        worker.kill()  # from outside: the whole sandbox goes, the pool starts a fresh one
        return Outcome("timeout", f"over the time limit in {signal.detail}", seconds=time.monotonic() - start)
    if session.channel is None:  # the sample never started: the test could not even ask it
        outcome = Outcome("unverified", signal.detail) if isinstance(signal, Unverified) else result
        if outcome is None:  # (never expected: every other way out goes through the sample)
            outcome = Outcome("unverified", f"the test ended before reaching the sample ({signal!r})")
        outcome.seconds = time.monotonic() - start
        return outcome
    died = isinstance(signal, SampleDied)
    reply = worker.end(status=died)
    # OOM kills in the worker's cgroup during this sample (read after every sample, so none is counted twice)
    oom_kills = worker.cgroup.new_oom_kills() if worker.cgroup is not None else 0
    setup = reply.get("setup")
    if setup != "ok":  # the server's word: the sample process failed before any sample code ran
        worker.kill()
        raise SandboxBroken(f"the sample's set-up failed: {str(setup)[:300]}")
    if died:
        outcome = _from_death(reply, oom_kills)
    elif isinstance(signal, SampleEnded):
        outcome = Outcome(signal.verdict, signal.detail)
    elif isinstance(signal, Unverified):
        outcome = Outcome("unverified", signal.detail)
    else:
        assert result is not None
        outcome = result
    outcome.output_bytes = int(reply.get("output_bytes") or 0)
    outcome.output_head = str(reply.get("output_head") or "")
    outcome.seconds = time.monotonic() - start
    if outcome.passed and measure and session.load_s is not None:
        outcome.timing = Timing(session.load_s, session.max_call_s, outcome.seconds)
    outcome.detail = safe_text(outcome.detail, 600)
    outcome.output_head = safe_text(outcome.output_head)
    return outcome


__all__ = ["SampleJob", "Outcome", "VERDICTS", "judge_sample", "safe_text", "SandboxBroken"]
