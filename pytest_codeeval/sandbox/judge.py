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

Predicted calls (speed, not trust): each stub call is a round trip to the
sample, and on a busy machine every hop waits for the scheduler.  The calls a
passing run of an item's test made are remembered (``CallLog``); the next
sample of that item gets them with its job and runs them in that order at
once, streaming one reply per call.  The stub still checks each call the test
makes against the list, in order, and takes the matching reply: the candidate
sees exactly the calls, in exactly the order, the test makes (a test that
uses earlier results still works).  The first call that differs stops the
sample and it is judged again from scratch without predictions (the sample
may already have run a call the test did not make); that item is then never
predicted again.  A test that stops early (a failed assertion) simply leaves
the rest unread.  The sample sends its predicted replies in bursts, so a
predicted run that ends in timeout, a dead sample or output_limit is judged
again without predictions (the hang, death or overflow may come from a call
the test never made, or hide replies it did not send yet): only passes and
plain failures (an assertion, an exception, a wrong type) are taken from a
predicted run, and those are decided by replies to calls the test made.
"""

from __future__ import annotations

import builtins
import functools
import json
import secrets
import threading
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


class _Mispredicted(BaseException):
    """The test made a call other than the predicted one."""


class _RerunLazily(BaseException):
    """A predicted run ended in a way speculation may have caused: judge it again without."""


class CandidateError(Exception):
    """A non-builtin exception the candidate raised, by name."""


# What one call looks like on the wire, and at most how much of it is remembered.
_MAX_PREDICTED_CALLS = 2000
_MAX_PREDICTED_CHARS = 2_000_000


class CallLog:
    """Per test: the calls a passing run made (JSON text and decoded), shared by the pool's threads.

    Keyed by everything the test's calls can depend on on the judge side:
    the test, its setup, the helpers and the entry point.  Dict operations
    are atomic under the GIL; the lock only keeps one writer at a time.
    """

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str, str, str], tuple[list[str], list[Any]]] = {}
        self._unpredictable: set[tuple[str, str, str, str]] = set()
        self._lock = threading.Lock()
        self.stats = {"predicted_samples": 0, "mispredicted": 0, "lazy_reruns": 0}

    @staticmethod
    def key(job: "SampleJob") -> tuple[str, str, str, str]:
        return (job.test, job.setup, job.helpers, job.entry_point)

    def get(self, job: "SampleJob") -> tuple[list[str], list[Any]] | None:
        k = self.key(job)
        return None if k in self._unpredictable else self._calls.get(k)

    def learn(self, job: "SampleJob", texts: list[str]) -> None:
        k = self.key(job)
        if not texts or k in self._unpredictable:
            return
        with self._lock:
            known = self._calls.get(k)
            if known is None or len(texts) > len(known[0]):
                self._calls[k] = (list(texts), [json.loads(t) for t in texts])

    def forget(self, job: "SampleJob") -> None:
        k = self.key(job)
        with self._lock:
            self._unpredictable.add(k)
            self._calls.pop(k, None)
            self.stats["mispredicted"] += 1


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

    def __init__(self, conn: socket.socket, tl: TimeLimits, sample_deadline: float, since: float,
                 predicted: list[str] | None = None) -> None:
        self._conn = conn
        self._tl = tl
        self._sample_deadline = sample_deadline
        self._predicted = predicted or []
        self._since = since  # when the sample last answered (a predicted call starts then)
        self.calls = 0
        self.max_call_s = 0.0
        self.record: list[str] = []  # the calls made, as sent (for CallLog)
        self._record_chars = 0
        self.mispredicted = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.mispredicted:  # a test that swallowed the first signal gets it again
            raise _Mispredicted()
        try:
            payload = {"args": encode_plain(list(args)), "kwargs": encode_plain(kwargs)}
        except NonPlain as e:
            raise _NeedSandbox(f"the test passes a non-plain argument ({e})") from None
        # JSON text tells 1, 1.0 and True apart (Python's == does not)
        text = json.dumps(payload, separators=(",", ":"))
        i = self.calls
        if i < len(self._predicted):
            if text != self._predicted[i]:
                self.mispredicted = True
                raise _Mispredicted()
            # already running in the sandbox since the previous reply: the
            # limit counts from when we read that reply (never less time)
            start = self._since
        else:
            start = time.monotonic()
            try:
                send_msg(self._conn, payload)
            except OSError:
                raise _SampleDied() from None
        if len(self.record) < _MAX_PREDICTED_CALLS and self._record_chars + len(text) <= _MAX_PREDICTED_CHARS:
            self.record.append(text)
            self._record_chars += len(text)
        deadline = min(start + self._tl.call_s, self._sample_deadline)
        reply = _receive(self._conn, deadline)
        self._since = time.monotonic()
        self.max_call_s = max(self.max_call_s, self._since - start)
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


def judge_stub(worker: Worker, job: SampleJob, limits: Limits, calls: CallLog | None = None,
               predict: bool = True) -> Outcome:
    """Judge in stub mode. Raises _NeedSandbox when the test needs the fallback
    and _Mispredicted when the predicted calls were wrong (the caller re-runs).

    ``calls`` learns from every passing run; ``predict`` says whether to use
    what it knows (a run that times a reference must not: predicted calls
    start before the judge asks)."""
    tl = job.time_limits
    predicted = calls.get(job) if calls is not None and predict else None
    start = time.monotonic()
    sample_deadline = start + tl.total_s
    message: dict[str, Any] = {"mode": "stub", "program": job.program, "setup": job.setup, "entry_point": job.entry_point}
    if predicted:
        message["batch"] = predicted[1]
        calls.stats["predicted_samples"] += 1  # type: ignore[union-attr]
    conn = worker.begin(message)
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
                stub = _Stub(conn, tl, sample_deadline, time.monotonic(), predicted[0] if predicted else None)
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
            if stub is not None and stub.mispredicted:
                raise _Mispredicted()  # the test swallowed it: the run proves nothing
        except socket.timeout:
            worker.kill()  # from outside: the whole sandbox goes, the pool starts a fresh one
            if predicted:
                raise _RerunLazily() from None
            which = "defining the program" if stub is None else f"call {stub.calls + 1}"
            return Outcome("timeout", f"over the time limit in {which}", seconds=time.monotonic() - start)
        except _SampleEnded as e:
            outcome = Outcome(e.verdict, e.detail)
        except _SampleDied:
            outcome = _from_status(worker.end(status=not predicted), "no answer")
            if predicted:
                raise _RerunLazily() from None
            outcome.seconds = time.monotonic() - start
            return outcome
        except NameError as e:
            if getattr(e, "_codeeval_candidate", False):
                outcome = Outcome("failed", _describe_failure(e, job.test))
            else:  # the test uses a name only the sample's program defines
                worker.end(status=False)
                raise _NeedSandbox(f"the test needs {e.name!r} from the program") from None
        except (_NeedSandbox, _Mispredicted):
            worker.end(status=False)
            raise
        except RecursionError as e:
            outcome = Outcome("failed", _describe_failure(e, job.test))
        except Exception as e:
            outcome = Outcome("failed", _describe_failure(e, job.test))
        if stub is not None and stub.mispredicted:  # swallowed by the test, then it failed otherwise
            worker.end(status=False)
            raise _Mispredicted()
        reply = worker.end(status=False)
        if reply.get("output_limited"):
            if predicted:
                raise _RerunLazily()
            outcome = Outcome("output_limit", f"wrote more than the output limit ({reply.get('output_bytes')} bytes)")
    finally:
        conn.close()
    outcome.seconds = time.monotonic() - start
    if outcome.passed and stub is not None:
        if calls is not None:
            calls.learn(job, stub.record)
        if not predicted:  # predicted calls start early: only a lazy run times the reference
            outcome.timing = Timing(load_s, stub.max_call_s, outcome.seconds)
    return outcome


def judge_in_sandbox(worker: Worker, job: SampleJob, limits: Limits) -> Outcome:
    """Fallback: the tests run inside the sandbox; only a nonce-tagged result counts."""
    tl = job.time_limits
    nonce = secrets.token_hex(16)
    start = time.monotonic()
    conn = worker.begin({"mode": "sandbox", "program": job.program, "setup": job.setup, "test": job.test,
                         "entry_point": job.entry_point, "nonce": nonce})
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
        reply = worker.end(status=False)
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


def judge_sample(worker: Worker, job: SampleJob, limits: Limits, force_sandbox: bool = False,
                 calls: CallLog | None = None, predict: bool = True) -> Outcome:
    """Stub mode first; the fallback only where the test needs it."""
    if not force_sandbox:
        try:
            try:
                return judge_stub(worker, job, limits, calls, predict)
            except _Mispredicted:
                calls.forget(job)  # type: ignore[union-attr]
            except _RerunLazily:
                calls.stats["lazy_reruns"] += 1  # type: ignore[union-attr]
            worker.ensure_started()
            return judge_stub(worker, job, limits, calls, predict=False)
        except _NeedSandbox as e:
            why = e.why
        outcome = judge_in_sandbox(worker, job, limits)
        outcome.detail = f"[tests ran in the sandbox: {why}] {outcome.detail}".strip()
        return outcome
    return judge_in_sandbox(worker, job, limits)


__all__ = ["SampleJob", "Outcome", "CallLog", "judge_sample", "judge_stub", "judge_in_sandbox", "SandboxBroken"]
