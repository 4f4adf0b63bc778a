"""Progress of each case and of the run.

Inside a case (any process) :class:`CaseProgress` logs the phases to the run
log and, without xdist and with -v, to the terminal: how many samples are
generated or reused from the store, tokens/s, how many are scored.  On the
controller :class:`RunProgress` prints one line per finished case with the
run's counts and an ETA; with -q it prints nothing until the summary, so
the dots stay readable, and under xdist the lines come from the controller
only, so they never interleave.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from .runlog import get_logger


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class CaseProgress:
    def __init__(self, case_id: str, write: Callable[[str], None] | None = None) -> None:
        self.case_id = case_id
        self.write = write
        self.log = get_logger("progress")
        self.t0 = time.perf_counter()

    def _say(self, text: str) -> None:
        line = f"codeeval {self.case_id}: {text}"
        self.log.info(line)
        if self.write is not None:
            self.write(line)

    def generating(self, n_items: int, n_samples: int) -> None:
        self._say(f"generation: {n_items} items x {n_samples} sample(s), looking up the store")

    def generated(self, figures: dict[str, Any], completion_tokens: int) -> None:
        speed = f", {completion_tokens / figures['engine_s']:.1f} tokens/s" if figures["engine_s"] > 0 else ""
        self._say(f"generation: {figures['generated']} generated in {figures['new_s']:.1f}s, "
                  f"{figures['reused']} reused from the store{speed}")

    def scored(self, figures: dict[str, int], seconds: float) -> None:
        self._say(f"scoring: {figures['scored']} scored in {seconds:.1f}s, {figures['verdicts_reused']} verdicts reused")


class RunProgress:
    """Controller-side: counts finished cases and estimates the time left."""

    def __init__(self, total: int, write: Callable[[str], None] | None, started: float | None = None) -> None:
        self.total = total
        self.done = 0
        self.write = write
        self.started = started or time.time()
        self.log = get_logger("progress")

    def eta(self) -> float | None:
        if not self.done or self.done >= self.total:
            return None
        return (time.time() - self.started) / self.done * (self.total - self.done)

    def case_finished(self, result: dict[str, Any]) -> str:
        self.done += 1
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


def case_progress(config: Any, case_id: str) -> CaseProgress:
    """Phase lines go to the terminal only with -v and without xdist (a
    worker's terminal is not the user's); always to the run log."""
    in_xdist = hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", None))
    write = terminal_writer(config) if config.option.verbose >= 1 and not in_xdist else None
    return CaseProgress(case_id, write)


class ProgressPlugin:
    """Registered on the controller: a line per finished case (not with -q),
    failures with their tracebacks into the run log."""

    def __init__(self, total: int, config: Any) -> None:
        write = terminal_writer(config) if config.option.verbose >= 0 else None
        self.run = RunProgress(total, write)

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
