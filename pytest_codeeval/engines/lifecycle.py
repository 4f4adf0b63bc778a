"""Engine processes end with the process that owns them, whatever ends it.

The owner's side of ``supervisor.py``:

* :func:`watched_start` wraps an engine's start. The processes started inside
  it carry a token in their environment; the supervisor (started once per
  process, at the first engine) ends them if this process dies without
  closing the engine, SIGKILL included. A record file under the report dir
  (``engines/<token>.json``: the owner's and the engine processes' pids and
  start times) survives even the supervisor's death.
* :func:`sweep` is what a new run of the same report dir calls before it
  loads anything: engines recorded by a run whose owner is gone are ended,
  and it says what it ended.

A normal close calls :meth:`EngineWatch.release` (the record goes away, the
supervisor forgets the token); :func:`shutdown` stops the supervisor at the
end of the run. Nothing here imports pytest or vLLM.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..runlog import get_logger
from .supervisor import (TOKEN_ENV, describe, end_processes, is_alive, is_resource_tracker, start_time,
                         token_holders)

SUPERVISOR_PATH = Path(__file__).with_name("supervisor.py")
RECORD_DIR_NAME = "engines"
SUPPORTED = sys.platform.startswith("linux")  # /proc and pidfds


@dataclass
class Settings:
    """Where this process's engines are recorded and reported (set by the plugin)."""

    record_dir: Path | None = None
    log_path: Path | None = None
    run_id: str = ""
    # The process that owns the whole run when this one is an xdist worker: (pid, start time).
    run_owner: tuple[int, int] | None = None


_settings = Settings()
_supervisor: "Supervisor | None" = None
_lock = threading.Lock()
_open: set[str] = set()  # tokens of engines started and not yet released


def configure(record_dir: Path | None, log_path: Path | None = None, run_id: str = "",
              run_owner_pid: int | None = None) -> None:
    global _settings
    run_owner = None
    if run_owner_pid and SUPPORTED:
        start = start_time(run_owner_pid)
        run_owner = (run_owner_pid, start) if start is not None else None
    _settings = Settings(record_dir, log_path, run_id, run_owner)


def record_dir_for(report_dir: Path) -> Path:
    return Path(report_dir) / RECORD_DIR_NAME


class Supervisor:
    """The supervisor process, seen from its owner: a pipe to send it commands."""

    def __init__(self, run_owner: tuple[int, int] | None, log_path: Path | None) -> None:
        me = os.getpid()
        args = [sys.executable, "-I", str(SUPERVISOR_PATH), str(me), str(start_time(me))]
        if run_owner:
            args += [str(run_owner[0]), str(run_owner[1])]
        # Started before any token is set, and without one: it must not find itself.
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        err = open(log_path, "ab") if log_path else subprocess.DEVNULL  # its tracebacks, if any, in the run log
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                                         env=env, start_new_session=True, close_fds=True)
        finally:
            if err is not subprocess.DEVNULL:
                err.close()  # type: ignore[union-attr]

    def send(self, **msg: Any) -> bool:
        if self.proc.poll() is not None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def stop(self) -> None:
        self.send(stop=True)
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def supervisor() -> Supervisor | None:
    """This process's supervisor, started at the first call (None where /proc is missing)."""
    global _supervisor
    if not SUPPORTED:
        return None
    with _lock:
        if _supervisor is None or _supervisor.proc.poll() is not None:
            if _supervisor is not None:
                get_logger("lifecycle").warning("the engine supervisor %d exited (code %s); starting another",
                                                _supervisor.proc.pid, _supervisor.proc.returncode)
            _supervisor = Supervisor(_settings.run_owner, _settings.log_path)
            get_logger("lifecycle").info("engine supervisor started (pid %d) for pytest pid %d",
                                         _supervisor.proc.pid, os.getpid())
        return _supervisor


def shutdown() -> None:
    """Stop the supervisor at the end of a run, unless an engine was never
    closed (an interrupted teardown): then it stays, and ends that engine
    when this process exits."""
    global _supervisor
    with _lock:
        if _supervisor is None:
            return
        if _open:
            get_logger("lifecycle").warning("%d engine(s) not closed: the supervisor (pid %d) ends them when this "
                                            "process exits", len(_open), _supervisor.proc.pid)
            return
        _supervisor.stop()
        _supervisor = None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class EngineWatch:
    """One engine's processes, recorded and watched from before its start until its close."""

    def __init__(self, label: str, token: str, record: Path | None, sup: Supervisor | None) -> None:
        self.label = label
        self.token = token
        self.record = record
        self.supervisor = sup
        self.procs: dict[int, int] = {}

    def _write_record(self) -> None:
        if self.record is None:
            return
        me = os.getpid()
        data = {
            "token": self.token, "label": self.label, "run_id": _settings.run_id,
            "host": socket.gethostname(), "boot_id": _boot_id(),
            "owner": {"pid": me, "start": start_time(me), "cmd": describe(me)},
            "processes": [{"pid": pid, "start": start, "cmd": describe(pid)} for pid, start in sorted(self.procs.items())],
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.record.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1))
            tmp.replace(self.record)  # a reader never sees half a record
        except OSError as e:
            get_logger("lifecycle").warning("cannot write the engine record %s: %s", self.record, e)

    def adopt(self, pids: Iterable[int]) -> dict[int, int]:
        """Record the engine's processes once it is up: the pids its owner saw
        appear and every process that carries its token."""
        if not SUPPORTED:
            return {}
        found = {pid: start_time(pid) for pid in pids}
        found.update(token_holders(self.token, exclude={os.getpid()}))
        if self.supervisor is not None:
            found.pop(self.supervisor.proc.pid, None)
        # The resource tracker is left to exit by itself (supervisor.is_resource_tracker).
        self.procs.update({pid: start for pid, start in found.items() if start is not None and not is_resource_tracker(pid)})
        self._write_record()
        if self.supervisor is not None:
            self.supervisor.send(pids=self.token, procs=sorted(self.procs.items()))
        get_logger("lifecycle").info("engine %s: processes %s", self.label,
                                     ", ".join(f"{pid} {describe(pid)}" for pid in sorted(self.procs)) or "none")
        return dict(self.procs)

    def alive(self) -> dict[int, str]:
        """Those of its processes that still run: pid -> description."""
        return {pid: describe(pid) for pid, start in self.procs.items() if is_alive(pid, start)}

    def release(self) -> None:
        """The engine closed: forget it (its processes are gone or were ended by the close)."""
        _open.discard(self.token)
        if self.supervisor is not None:
            self.supervisor.send(forget=self.token)
        if self.record is not None:
            try:
                self.record.unlink()
            except OSError:
                pass


@contextmanager
def watched_start(label: str) -> Iterator[EngineWatch]:
    """Start an engine inside this: every process started meanwhile carries
    the watch's token, and is ended if this process dies before ``release``."""
    token = uuid.uuid4().hex
    record = _settings.record_dir / f"{token}.json" if _settings.record_dir and SUPPORTED else None
    watch = EngineWatch(label, token, record, supervisor())
    _open.add(token)
    watch._write_record()  # before the start: a kill during a 2-minute load is covered too
    if watch.supervisor is not None:
        watch.supervisor.send(watch=token, record=str(record) if record else None,
                              log=str(_settings.log_path) if _settings.log_path else None)
    previous = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = token
    try:
        yield watch
    finally:
        if previous is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = previous


def sweep(record_dir: Path) -> list[str]:
    """End the engines that earlier runs recorded here and left behind.

    A record whose owner still runs belongs to a run in progress (another
    pytest on the same report dir, or another xdist worker) and is left
    alone; so is a record from another host (a shared file system). Returns
    one line per record whose processes were ended."""
    if not SUPPORTED or not record_dir.is_dir():
        return []
    lines: list[str] = []
    host, boot = socket.gethostname(), _boot_id()
    for path in sorted(record_dir.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            owner = rec["owner"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rec.get("host") != host:
            continue
        if rec.get("boot_id") == boot and is_alive(int(owner["pid"]), owner.get("start")):
            continue
        ended: list[tuple[int, str]] = []
        if rec.get("boot_id") == boot:  # after a reboot nothing of it runs (and pids mean nothing)
            procs: dict[int, int | None] = {int(p["pid"]): p.get("start") for p in rec.get("processes", [])}
            procs.update(token_holders(str(rec.get("token")), exclude={os.getpid()}))
            ended = end_processes(procs)
        try:
            path.unlink()
        except OSError:
            pass
        if ended:
            lines.append(
                f"ended {len(ended)} engine process(es) left by an earlier run ({rec.get('label')}, run "
                f"{rec.get('run_id') or '?'}, pytest pid {owner['pid']}, recorded {rec.get('written_at')}): "
                + ", ".join(f"{pid} {what}" for pid, what in ended)
            )
    return lines


__all__ = ["configure", "watched_start", "EngineWatch", "sweep", "shutdown", "supervisor", "record_dir_for",
           "TOKEN_ENV"]
