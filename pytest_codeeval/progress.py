"""Progress of each engine call and of the run.

On the controller :class:`RunProgress` prints one line per finished case
with the run's counts and an ETA; with -q it prints nothing until the summary, so
the dots stay readable, and under xdist the lines come from the controller
only, so they never interleave.

Inside one engine call, which may run for many minutes, :class:`CallProgress`
is the sink the engine reports to (prompts finished, tokens): the caller
opens it with :func:`reporting` and the engine finds it with
:func:`current_sink`, through any wrapper (the store's deferred engine), so
the engine interface does not change.  A thread renders it: in place on a
terminal, as a line every ``--progress-interval`` seconds where there is no
terminal (logs, CI), and into the run log.  The engine only counts; the
rendering never runs in the generation loop.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, TextIO

from .defaults import PROGRESS_INTERVAL_S as DEFAULT_INTERVAL_S
from .defaults import PROGRESS_REFRESH_S as REFRESH_S
from .runlog import get_logger


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class CallProgress:
    """Progress of one engine call, reported by the engine, rendered by a thread.

    The engine calls :meth:`start` with the number of prompts it submits,
    :meth:`advance` as prompts finish (from any thread: a server engine's
    pool reports from its workers) and :meth:`finish`.  ``live_tokens``
    (optional) returns the tokens generated so far by each request still
    running, so tokens/s moves before the first prompt is done.  Several
    engines sharing one call (data parallel) each report through a
    :meth:`part`.

    The ETA is the time per finished prompt times the prompts left: with
    every prompt in flight at once, short answers finish first at a steady
    rate, which an estimate from the tokens of finished prompts misses.  Where
    many answers run into the token cap (``max_tokens``) they all end at
    once, later than that rate says; so once every request left is decoding
    (each has a token), the time for the least advanced one to reach the cap
    at the pace of the most advanced one bounds the ETA, and the smaller of
    the two is shown.
    """

    def __init__(self, label: str, stream: TextIO | None = None, tty: bool = False,
                 interval_s: float = DEFAULT_INTERVAL_S, refresh_s: float = REFRESH_S,
                 at_line_start: Callable[[], bool] | None = None) -> None:
        self.label = label
        self.stream = stream
        # Whether pytest's own output ended its line: if not ("test_x.py ..."),
        # the first progress line starts on a new one.
        self.at_line_start = at_line_start
        self.tty = tty and stream is not None
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self.log = get_logger("progress")
        self.total = 0
        self.done = 0
        self.tokens = 0  # completion tokens of the finished prompts
        self.live_sources: list[Callable[[], Sequence[int]]] = []
        self.max_tokens: int | None = None
        self.t0 = time.monotonic()
        self.ended: float | None = None
        self.shown = False  # whether the terminal got a line (then it gets the final one too)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.thread_cpu_s = 0.0  # CPU time the rendering thread used (bench_progress.py reports it)

    # -- what engines call -------------------------------------------------
    def start(self, total: int, live_tokens: Callable[[], Sequence[int]] | None = None,
              max_tokens: int | None = None) -> None:
        if self._thread is not None and self._thread.is_alive():  # started again without a finish
            self._stop.set()
            self._thread.join(timeout=2)
        self.total, self.done, self.tokens = total, 0, 0
        self.live_sources = [live_tokens] if live_tokens is not None else []
        self.max_tokens = max_tokens
        self.t0 = time.monotonic()
        self.ended = None
        self._stop.clear()
        if self.interval_s > 0:  # --progress-interval 0: the final line in the run log only
            self._thread = threading.Thread(target=self._run, name="codeeval-progress", daemon=True)
            self._thread.start()

    def advance(self, n: int = 1, tokens: int = 0) -> None:
        with self._lock:
            self.done += n
            self.tokens += tokens

    def finish(self) -> None:
        if self.ended is not None:
            return
        self.ended = time.monotonic()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        text = self.line()
        self.log.info(text)
        if self.shown and self.stream is not None:
            self._write(text, final=True)

    # -- rendering ---------------------------------------------------------
    def figures(self, now: float | None = None) -> dict[str, Any]:
        """The figures of the line: done, total, tokens (in flight included), tokens/s, elapsed, ETA."""
        now = self.ended if self.ended is not None else (now if now is not None else time.monotonic())
        elapsed = max(now - self.t0, 1e-9)
        with self._lock:
            done, tokens = self.done, self.tokens
        running: list[int] = []
        for source in list(self.live_sources) if self.ended is None else []:
            try:
                running += source()
            except Exception:  # a peek into a running engine must never break it
                self.live_sources.remove(source)
        tokens += sum(running)
        eta = elapsed / done * (self.total - done) if 0 < done < self.total else None
        if self.max_tokens and running and min(running) > 0 and done < self.total:
            to_cap = (self.max_tokens - min(running)) * elapsed / max(running)
            eta = to_cap if eta is None else min(eta, to_cap)
        return {"done": done, "total": self.total, "tokens": tokens, "tokens_per_s": tokens / elapsed,
                "elapsed_s": elapsed, "eta_s": eta}

    def part(self) -> "PartProgress":
        """A share of this call for one of several engines generating it together (data parallel)."""
        return PartProgress(self)

    def line(self, now: float | None = None) -> str:
        f = self.figures(now)
        pct = f"{100 * f['done'] / f['total']:.0f}%" if f["total"] else "-"
        parts = [f"generation {f['done']}/{f['total']} prompts ({pct})", f"{f['tokens_per_s']:.1f} tokens/s"]
        if self.ended is not None:
            # A call that raised (an interrupt, a dead engine) ends with prompts left.
            ended = "done in" if f["done"] >= f["total"] else "stopped after"
            parts.append(f"{ended} {fmt_duration(f['elapsed_s'])}")
        else:
            parts.append(f"{fmt_duration(f['elapsed_s'])} elapsed")
            parts.append(f"ETA {fmt_duration(f['eta_s'])}" if f["eta_s"] is not None else "ETA --")
        return f"codeeval {self.label}: " + ", ".join(parts)

    def _write(self, text: str, final: bool = False) -> None:
        assert self.stream is not None
        try:
            if not self.shown and self.at_line_start is not None and not self.at_line_start():
                self.stream.write("\n")
            if self.tty:
                width = shutil.get_terminal_size((120, 24)).columns - 1
                # \r + clear-to-end: one line rewritten in place (never wider than the terminal, so it never wraps).
                self.stream.write("\r" + text[:width] + "\x1b[K" + ("\n" if final else ""))
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: keep generating
            self.stream = None

    def _run(self) -> None:
        try:
            self._render_until_finished()
        finally:
            self.thread_cpu_s = time.thread_time()

    def _render_until_finished(self) -> None:
        last_line = last_log = self.t0
        tick = self.refresh_s if self.tty else min(self.interval_s, 1.0)
        while not self._stop.wait(tick):
            now = time.monotonic()
            text: str | None = None
            if now - last_log >= self.interval_s:
                text = self.line(now)
                self.log.info(text)
                last_log = now
            if self.stream is None:
                continue
            if self.tty:
                if now - self.t0 >= max(self.refresh_s, 1.0):  # calls under a second stay silent
                    self._write(text or self.line(now))
                    self.shown = True
            elif now - last_line >= self.interval_s:
                self._write(text or self.line(now))
                self.shown = True
                last_line = now


class PartProgress:
    """One replica's share of a call (data parallel): it reports to the whole
    call's sink, which the replicas' engine started with the call's total."""

    def __init__(self, whole: CallProgress) -> None:
        self.whole = whole
        self.done = 0

    def start(self, total: int, live_tokens: Callable[[], Sequence[int]] | None = None,
              max_tokens: int | None = None) -> None:
        if live_tokens is not None:
            self.whole.live_sources.append(live_tokens)
        if max_tokens:
            self.whole.max_tokens = max(self.whole.max_tokens or 0, max_tokens)

    def advance(self, n: int = 1, tokens: int = 0) -> None:
        self.done += n
        self.whole.advance(n, tokens)

    def finish(self) -> None:
        pass  # the whole call finishes once


_current: contextvars.ContextVar[CallProgress | PartProgress | None] = contextvars.ContextVar(
    "codeeval_call_progress", default=None)


def current_sink() -> CallProgress | PartProgress | None:
    """The progress sink of the engine call being made in this context, if any."""
    return _current.get()


@contextmanager
def reporting(sink: CallProgress | PartProgress | None) -> Iterator[CallProgress | PartProgress | None]:
    """Engine calls made inside report to ``sink``."""
    token = _current.set(sink)
    try:
        yield sink
    finally:
        _current.reset(token)
        if isinstance(sink, CallProgress) and sink.total and sink.ended is None:
            sink.finish()  # the call raised (an interrupt, a dead engine): the last figures still get logged


def call_progress(config: Any, label: str) -> CallProgress:
    """A sink for an engine call of this run: rendered on the terminal that
    :class:`ProgressPlugin` kept (none under xdist or -q), always logged."""
    plugin = config.pluginmanager.get_plugin("codeeval-progress")
    stream = getattr(plugin, "stream", None)
    interval = config.getoption("codeeval_progress_interval", DEFAULT_INTERVAL_S)
    interval = DEFAULT_INTERVAL_S if interval is None else float(interval)
    writer = getattr(config.pluginmanager.get_plugin("terminalreporter"), "_tw", None)
    at_line_start = (lambda: getattr(writer, "width_of_current_line", 0) == 0) if writer is not None else None
    return CallProgress(label, stream, tty=bool(getattr(plugin, "tty", False)), interval_s=interval,
                        at_line_start=at_line_start)


def _terminal_stream(config: Any) -> tuple[TextIO | None, bool]:
    """A private copy of the terminal's stdout, taken while pytest's capture is
    off: the progress thread writes to it while a test (whose output is
    captured) runs, without touching the capture."""
    try:
        fd = os.dup(1)
    except OSError:
        return None, False
    stream = os.fdopen(fd, "w", encoding="utf-8", errors="replace", closefd=True)
    tty = os.isatty(fd) and os.environ.get("TERM") != "dumb"
    return stream, tty


class RunProgress:
    """Controller-side: counts finished cases and estimates the time left."""

    def __init__(self, total: int, write: Callable[[str], None] | None, started: float | None = None,
                 engine_of: dict[str, str] | None = None) -> None:
        self.total = total
        self.done = 0
        self.write = write
        self.started = started or time.time()
        self.log = get_logger("progress")
        # case id -> engine key: an engine's first case carries its load and the
        # generation of all its cases (one call per engine); the rest only find
        # and score theirs.  Averaging over cases said "ETA 10m30s" after the
        # first case of a run that ended 2 minutes later.
        self.engine_of = engine_of or {}
        self.engines = set(self.engine_of.values())
        self.engines_seen: set[str] = set()
        self.last_finish = self.started
        self.follow_s, self.follow_n = 0.0, 0

    def eta(self) -> float | None:
        if not self.done or self.done >= self.total:
            return None
        elapsed = time.time() - self.started
        if not self.engines_seen:
            return elapsed / self.done * (self.total - self.done)
        engines_left = len(self.engines - self.engines_seen)
        per_engine = max(elapsed - self.follow_s, 0.0) / len(self.engines_seen)
        if not engines_left and not self.follow_n:
            return None  # only the quick cases of loaded engines are left, and none has been timed yet
        per_case = self.follow_s / self.follow_n if self.follow_n else 0.0
        return per_engine * engines_left + per_case * max(self.total - self.done - engines_left, 0)

    def case_finished(self, result: dict[str, Any]) -> str:
        self.done += 1
        now = time.time()
        engine = self.engine_of.get(result.get("case_id", ""))
        if engine is not None:
            if engine in self.engines_seen:
                self.follow_s += now - self.last_finish
                self.follow_n += 1
            self.engines_seen.add(engine)
        self.last_finish = now
        p = result.get("performance") or {}
        score = result.get("score")
        parts = [f"[{self.done}/{self.total}] {result['case_id']}"]
        if result.get("status") == "error":
            parts.append("error")
        elif score is not None:
            parts.append(f"{result.get('primary_metric', 'score')} {100 * score:.1f}%")
        n = (p.get("generated") or 0) + (p.get("generations_reused") or 0)
        if n:
            parts.append(f"{n} samples ({p.get('generations_reused', 0)} from store)")
        if p.get("tokens_per_s"):
            parts.append(f"{p['tokens_per_s']:.1f} tokens/s")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {fmt_duration(eta)}")
        line = "codeeval " + ", ".join(parts)
        self.log.info(line)
        if self.write is not None:
            self.write(line)
        return line


def terminal_writer(config: Any) -> Callable[[str], None] | None:
    """A line writer to the real terminal (past pytest's output capture)."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return None
    capman = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if capman is not None:
            with capman.global_and_fixture_disabled():
                tr.write_line(line)
        else:
            tr.write_line(line)

    return write


class ProgressPlugin:
    """Registered on the controller: a line per finished case (not with -q),
    failures with their tracebacks into the run log."""

    def __init__(self, total: int, config: Any, engine_of: dict[str, str] | None = None) -> None:
        write = terminal_writer(config) if config.option.verbose >= 0 else None
        self.run = RunProgress(total, write, engine_of=engine_of)
        # The terminal for in-call progress (call_progress); taken now, during
        # collection, while pytest's capture is off.
        self.stream, self.tty = _terminal_stream(config) if write is not None else (None, False)

    def pytest_unconfigure(self) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None

    def pytest_runtest_logreport(self, report: Any) -> None:
        case = getattr(report, "codeeval_case", None)
        if case is None:
            return
        if report.failed:
            from .runlog import log_failure

            log_failure(case["id"], report.longreprtext)
        result = getattr(report, "codeeval_result", None)
        if result is not None:
            self.run.case_finished(result)
        elif report.failed and report.when == "setup":
            self.run.case_finished({"case_id": case["id"], "status": "error"})
