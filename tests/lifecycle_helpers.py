"""What the lifecycle tests share: a pytest run in a subprocess whose output
is read as it comes (to send a signal at the right moment), and the engine
processes of a run, found and waited for."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest

# One in-call progress line: "codeeval <label>: generation 3/8 prompts (38%), 41.0 tokens/s, 4s elapsed, ETA 7s".
PROGRESS_RE = re.compile(r"codeeval (\S+): generation (\d+)/(\d+) prompts \((\d+)%\), ([\d.]+) tokens/s, "
                         r"(\S+) elapsed, ETA (\S+)")
ENGINE_NAMES = ("VLLM::EngineCore", "VLLM::Worker")


class Run:
    """``python -m pytest ARGS`` in ``cwd``, its output collected line by line.

    Every run still going when its test ends is killed (``kill_leftovers``,
    from an autouse fixture): a test that fails half-way must not leave a
    pytest, or an engine, running."""

    started: list["Run"] = []

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str] | None = None,
                 new_session: bool = False) -> None:
        self.new_session = new_session
        Run.started.append(self)
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=new_session,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``; fails with the output so far after ``timeout``."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                m = rx.search(line)
                if m:
                    return m
            seen = len(self.lines)
            if self.proc.poll() is not None and seen == len(self.lines):
                self._reader.join(timeout=5)
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                raise AssertionError(f"the run ended (code {self.proc.returncode}) before {rx.pattern!r}:\n"
                                     + self.output[-6000:])
            time.sleep(0.1)
        raise AssertionError(f"no {rx.pattern!r} within {timeout:.0f} s:\n" + self.output[-6000:])

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    @classmethod
    def kill_leftovers(cls) -> None:
        for run in cls.started:
            if run.proc.poll() is None:
                try:
                    if run.new_session:
                        os.killpg(run.proc.pid, signal.SIGKILL)
                    else:
                        run.proc.kill()  # its supervisor ends its engine
                except OSError:
                    pass
                run.proc.wait(timeout=30)
        cls.started.clear()

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


def wait_all_gone(procs: list[psutil.Process], timeout: float) -> tuple[float, list[str]]:
    """Seconds until none of these processes runs (zombies count as gone), and those still running at the deadline."""
    t0 = time.monotonic()
    left = list(procs)
    while left and time.monotonic() - t0 < timeout:
        left = [p for p in left if _running(p)]
        if left:
            time.sleep(0.05)
    return time.monotonic() - t0, [f"{p.pid} {_name(p)}" for p in left if _running(p)]


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _name(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())[:80] or p.name()
    except psutil.Error:
        return "?"


def engine_processes(procs: list[psutil.Process], names: tuple[str, ...] = ENGINE_NAMES) -> list[psutil.Process]:
    """Those of ``procs`` that are vLLM engine processes (they rename themselves; the
    command line holds the whole name, ``name()`` only 15 characters)."""
    return [p for p in procs if any(n in _name(p) for n in names)]


def poll_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@pytest.fixture(autouse=True)
def no_run_left() -> Iterator[None]:
    """Imported by a test module: no run of its tests outlives them."""
    yield
    Run.kill_leftovers()


def latest_comparison(report_dir: Path) -> dict:
    """The latest run's comparison (a run of other presets writes another file)."""
    latest = max((report_dir / "comparisons").glob("*_comparison.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(latest.read_text())
