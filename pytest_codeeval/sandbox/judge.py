"""The judge: runs the dataset's tests in the trusted process, the sample in the sandbox.

Stub mode (preferred): the test code runs here; ``candidate`` (and the entry
point's name, which MBPP-style tests call) is a stub that sends each call's
arguments to the sandboxed sample and brings back plain data only.  Nothing
the sample builds ever reaches a comparison, and the verdict is decided here.

Sandbox mode (fallback, when the test needs names only the sample defines or
passes arguments that are not plain data): the test runs next to the sample;
its result comes back on the sample socket tagged with a nonce the judge made,
and every value the candidate returns is replaced by a plain copy first.

Exit codes and output never decide anything.
"""

from __future__ import annotations

import builtins
import functools
import secrets
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from .limits import Limits, TimeLimits, Timing
from .server import NonPlain, WireError, decode_plain, encode_plain, recv_msg, send_msg
from .worker import SandboxBroken, Worker


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
    verdict: str  # passed, failed, timeout, memory, crashed, output_limit, sandbox_error
    detail: str = ""
    mode: str = "stub"  # where the tests ran: "stub" (judge) or "sandbox" (fallback)
    seconds: float = 0.0
    timing: Timing | None = None  # only for a passing run: what calibration uses

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


# Signals from the stub.  BaseException, so a test's `except Exception` cannot
# swallow them and turn a timeout into a pass.
class _SampleEnded(BaseException):
    def __init__(self, verdict: str, detail: str) -> None:
        super().__init__(detail)
        self.verdict = verdict
        self.detail = detail


class _SampleDied(BaseException):
    """The sample's socket closed: it exited, crashed or was killed by the server."""


class _NeedSandbox(BaseException):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class CandidateError(Exception):
    """A non-builtin exception the candidate raised, by name."""


def _receive(conn: socket.socket, deadline: float) -> Any:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout()
    conn.settimeout(remaining)
    try:
        return recv_msg(conn)
    except (EOFError, ConnectionError):
        raise _SampleDied() from None
    except WireError as e:
        raise _SampleEnded("failed", f"the sample sent a malformed reply ({e})") from None


def _candidate_exception(info: dict[str, Any]) -> BaseException:
    """Rebuild what the candidate raised, as a builtin exception where possible,
    so a test that expects e.g. ValueError still sees one."""
    name, msg = str(info.get("type", "?")), str(info.get("msg", ""))
    if info.get("memory"):
        return _SampleEnded("memory", f"MemoryError: {msg}".strip())
    cls = getattr(builtins, name, None) if info.get("builtin") else None
    exc: BaseException
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(msg)
        except Exception:
            exc = CandidateError(f"{name}: {msg}")
    else:
        exc = CandidateError(f"{name}: {msg}")
    exc._codeeval_candidate = True  # type: ignore[attr-defined]
    return exc


class _Stub:
    """Stands for the candidate function inside the trusted test code."""

    def __init__(self, conn: socket.socket, tl: TimeLimits, sample_deadline: float) -> None:
        self._conn = conn
        self._tl = tl
        self._sample_deadline = sample_deadline
        self.calls = 0
        self.max_call_s = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            payload = {"args": encode_plain(list(args)), "kwargs": encode_plain(kwargs)}
        except NonPlain as e:
            raise _NeedSandbox(f"the test passes a non-plain argument ({e})") from None
        start = time.monotonic()
        try:
            send_msg(self._conn, payload)
        except OSError:
            raise _SampleDied() from None
        deadline = min(start + self._tl.call_s, self._sample_deadline)
        reply = _receive(self._conn, deadline)
        self.max_call_s = max(self.max_call_s, time.monotonic() - start)
        self.calls += 1
        if not isinstance(reply, dict):
            raise _SampleEnded("failed", "the sample sent a malformed reply")
        if "ok" in reply:
            try:
                return decode_plain(reply["ok"])
            except WireError as e:
                raise _SampleEnded("failed", f"the sample sent a malformed value ({e})") from None
        if "nonplain" in reply:
            raise _SampleEnded("failed", f"returned a non-plain object ({str(reply['nonplain'])[:80]})")
        if "exc" in reply and isinstance(reply["exc"], dict):
            raise _candidate_exception(reply["exc"])
        raise _SampleEnded("failed", "the sample sent a malformed reply")


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
    if isinstance(exc, AssertionError):
        msg = str(exc)
        return f"assertion failed: {where}" + (f" ({msg[:200]})" if msg else "")
    label = "candidate raised" if getattr(exc, "_codeeval_candidate", False) else "test raised"
    return f"{label} {type(exc).__name__}: {str(exc)[:200]}" + (f" at: {where}" if where else "")


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, filename: str) -> Any:
    """Compile trusted dataset code once per item, not once per sample; None if it is prose."""
    try:
        return compile(source, filename, "exec")
    except SyntaxError:
        if filename == "<helpers>":
            return None  # an MBPP-style prompt is prose, not code
        raise


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


def _from_status(reply: dict[str, Any], fallback_detail: str) -> Outcome:
    if reply.get("output_limited"):
        return Outcome("output_limit", f"wrote more than the output limit ({reply.get('output_bytes')} bytes)")
    exit_code = (reply.get("status") or {}).get("exit")
    if exit_code == 70 and str(reply.get("output_head", "")).startswith("sandbox setup failed"):
        raise SandboxBroken(reply["output_head"][:300])
    how = f"killed by signal {-exit_code}" if isinstance(exit_code, int) and exit_code < 0 else f"exited with code {exit_code}"
    return Outcome("crashed", f"{fallback_detail}: the sample {how}")


def judge_stub(worker: Worker, job: SampleJob, limits: Limits) -> Outcome:
    tl = job.time_limits
    start = time.monotonic()
    sample_deadline = start + tl.total_s
    conn = worker.begin({"mode": "stub", "program": job.program, "setup": job.setup,
                         "entry_point": job.entry_point, "rlimits": limits.rlimits()})
    outcome: Outcome
    load_s = 0.0
    stub: _Stub | None = None
    try:
        try:
            first = _receive(conn, min(start + tl.load_s, sample_deadline))
            load_s = time.monotonic() - start
            if isinstance(first, dict) and "load_error" in first:
                info = first["load_error"] if isinstance(first["load_error"], dict) else {}
                if info.get("memory"):
                    outcome = Outcome("memory", "MemoryError while defining the program")
                else:
                    outcome = Outcome("failed", f"program raised {info.get('type')}: {str(info.get('msg', ''))[:200]}")
            elif isinstance(first, dict) and first.get("loaded") is True:
                ns = _trusted_namespace(job)
                stub = _Stub(conn, tl, sample_deadline)
                # Look check up before binding the entry point: a solution may
                # itself be named check (MBPP 56, 349).
                check = ns.get("check")
                ns[job.entry_point] = stub
                if not callable(check):
                    outcome = Outcome("sandbox_error", "the dataset's test defines no check(candidate) function")
                else:
                    check(stub)
                    outcome = Outcome("passed")
            else:
                outcome = Outcome("failed", "the sample sent a malformed first message")
        except socket.timeout:
            worker.kill()  # from outside: the whole sandbox goes, the pool starts a fresh one
            which = "defining the program" if stub is None else f"call {stub.calls + 1}"
            return Outcome("timeout", f"over the time limit in {which}", seconds=time.monotonic() - start)
        except _SampleEnded as e:
            outcome = Outcome(e.verdict, e.detail)
        except _SampleDied:
            outcome = _from_status(worker.end(), "no answer")
            outcome.seconds = time.monotonic() - start
            return outcome
        except NameError as e:
            if getattr(e, "_codeeval_candidate", False):
                outcome = Outcome("failed", _describe_failure(e, job.test))
            else:  # the test uses a name only the sample's program defines
                worker.end()
                raise _NeedSandbox(f"the test needs {e.name!r} from the program") from None
        except _NeedSandbox:
            worker.end()
            raise
        except RecursionError as e:
            outcome = Outcome("failed", _describe_failure(e, job.test))
        except Exception as e:
            outcome = Outcome("failed", _describe_failure(e, job.test))
        reply = worker.end()
        if reply.get("output_limited"):
            outcome = Outcome("output_limit", f"wrote more than the output limit ({reply.get('output_bytes')} bytes)")
    finally:
        conn.close()
    outcome.seconds = time.monotonic() - start
    if outcome.passed and stub is not None:
        outcome.timing = Timing(load_s, stub.max_call_s, outcome.seconds)
    return outcome


def judge_in_sandbox(worker: Worker, job: SampleJob, limits: Limits) -> Outcome:
    """Fallback: the tests run inside the sandbox; only a nonce-tagged result counts."""
    tl = job.time_limits
    nonce = secrets.token_hex(16)
    start = time.monotonic()
    conn = worker.begin({"mode": "sandbox", "program": job.program, "setup": job.setup, "test": job.test,
                         "entry_point": job.entry_point, "nonce": nonce, "rlimits": limits.rlimits()})
    try:
        try:
            msg = _receive(conn, start + max(tl.total_s, tl.load_s))
        except socket.timeout:
            worker.kill()
            return Outcome("timeout", "over the time limit (tests inside the sandbox)", "sandbox", time.monotonic() - start)
        except _SampleEnded as e:
            msg = None
            outcome = Outcome(e.verdict, e.detail, "sandbox")
        except _SampleDied:
            outcome = _from_status(worker.end(), "no result")
            outcome.mode, outcome.seconds = "sandbox", time.monotonic() - start
            return outcome
        if msg is not None:
            outcome = _sandbox_result(msg, nonce, job)
        reply = worker.end()
        if reply.get("output_limited"):
            outcome = Outcome("output_limit", f"wrote more than the output limit ({reply.get('output_bytes')} bytes)")
    finally:
        conn.close()
    outcome.mode = "sandbox"
    outcome.seconds = time.monotonic() - start
    if outcome.passed:
        outcome.timing = Timing(0.0, outcome.seconds, outcome.seconds)
    return outcome


def _sandbox_result(msg: Any, nonce: str, job: SampleJob) -> Outcome:
    if not isinstance(msg, dict):
        return Outcome("failed", "malformed result")
    if "load_error" in msg:
        info = msg["load_error"] if isinstance(msg["load_error"], dict) else {}
        if info.get("memory"):
            return Outcome("memory", "MemoryError while defining the program")
        return Outcome("failed", f"program raised {info.get('type')}: {str(info.get('msg', ''))[:200]}")
    if msg.get("nonce") != nonce:
        return Outcome("failed", "a result without the judge's nonce (forged by the sample?)")
    if msg.get("passed") is True:
        return Outcome("passed")
    if isinstance(msg.get("failed"), dict):
        line = msg["failed"].get("line", 0)
        lines = job.test.splitlines()
        where = lines[line - 1].strip() if isinstance(line, int) and 0 < line <= len(lines) else ""
        return Outcome("failed", f"assertion failed: {where}")
    if "nonplain" in msg:
        return Outcome("failed", f"returned a non-plain object ({str(msg['nonplain'])[:80]})")
    info = msg.get("exc") if isinstance(msg.get("exc"), dict) else {}
    if info.get("memory"):
        return Outcome("memory", "MemoryError")
    return Outcome("failed", f"raised {info.get('type')}: {str(info.get('msg', ''))[:200]}")


def judge_sample(worker: Worker, job: SampleJob, limits: Limits, force_sandbox: bool = False) -> Outcome:
    """Stub mode first; the fallback only where the test needs it."""
    if not force_sandbox:
        try:
            return judge_stub(worker, job, limits)
        except _NeedSandbox as e:
            why = e.why
        outcome = judge_in_sandbox(worker, job, limits)
        outcome.detail = f"[tests ran in the sandbox: {why}] {outcome.detail}".strip()
        return outcome
    return judge_in_sandbox(worker, job, limits)


__all__ = ["SampleJob", "Outcome", "judge_sample", "judge_stub", "judge_in_sandbox", "SandboxBroken"]
