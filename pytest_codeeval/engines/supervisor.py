"""The engine supervisor: a small process that ends an owner's engines when the owner dies.

vLLM starts its engine in other processes (``VLLM::EngineCore``, which starts
``VLLM::Worker``). Nothing in them notices that the process that started them
is gone, so a pytest run killed with SIGKILL leaves them running, holding the
memory (on a GPU, most of the card) that the rerun needs. A parent-death
signal would need code inside vLLM's children; instead each process that
loads an engine starts this supervisor first (``lifecycle.py``), in its own
session, so that a signal to pytest's process group does not take it too.

How it finds the engine's processes: every process started while an engine
loads inherits ``CODEEVAL_ENGINE_TOKEN=<token>`` in its environment, and the
owner also tells the supervisor their pids once the engine is up. When the
owner dies (a pidfd becomes readable; a poll once a second where pidfds are
missing), the supervisor kills every live process that carries a watched
token, plus the pids it was told where their start time still matches
(against pid reuse), removes their record files, writes what it did to the
run log, and exits. A normal close tells it to forget the token; the end of
the run tells it to stop.

Run as ``python supervisor.py OWNER_PID OWNER_START [RUN_PID RUN_START]``:
``RUN_*`` is the process that owns the whole run (the pytest-xdist
controller); when it dies, the owner (a worker with nowhere left to report
to) is killed with its engines. Commands arrive as JSON lines on stdin:
``{"watch": TOKEN, "record": PATH|null, "log": PATH|null}``,
``{"pids": TOKEN, "procs": [[PID, START], ...]}``, ``{"forget": TOKEN}``,
``{"stop": true}``.

This file imports only the standard library: it starts in ~30 ms and needs
nothing of the package. The /proc helpers are shared with ``lifecycle.py``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

TOKEN_ENV = "CODEEVAL_ENGINE_TOKEN"
# Long enough for the kernel to reap a killed engine that holds GBs of memory.
KILL_WAIT_S = 15.0
POLL_S = 1.0


# -- /proc helpers (Linux) ------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm may hold spaces and parentheses: the fields start after the last ')'.
    return raw[raw.rfind(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None: no such process).

    (pid, start time) names one process for good: a pid reused later has
    another start time."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def is_alive(pid: int, start: int | None) -> bool:
    """Whether this very process still runs (a zombie counts as gone)."""
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20 or fields[0] in ("Z", "X"):
        return False
    return start is None or int(fields[19]) == start


def describe(pid: int) -> str:
    """What ``ps`` would show: vLLM renames its processes (VLLM::EngineCore)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        if cmd:
            return cmd[:80]
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def is_resource_tracker(pid: int) -> bool:
    """multiprocessing's resource tracker exits by itself once every process
    that shares it is gone, and unlinks the shared memory they leaked: it is
    never killed."""
    return "resource_tracker" in describe(pid)


def token_holders(token: str, exclude: set[int] | None = None) -> dict[int, int]:
    """Live processes whose environment carries this engine token: pid -> start time."""
    needle = f"{TOKEN_ENV}={token}".encode()
    found: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if exclude and pid in exclude:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:  # gone, or another user's
            continue
        if needle + b"\0" in env or env.endswith(needle):
            start = start_time(pid)
            if start is not None:
                found[pid] = start
    return found


def end_processes(procs: dict[int, int | None], wait_s: float = KILL_WAIT_S) -> list[tuple[int, str]]:
    """SIGKILL the processes that still are who they were; wait until they are gone.

    Returns (pid, description) of those that were alive and got the signal."""
    ended: list[tuple[int, str]] = []
    for pid, start in procs.items():
        if pid == os.getpid() or not is_alive(pid, start) or is_resource_tracker(pid):
            continue
        what = describe(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
        ended.append((pid, what))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(is_alive(pid, procs[pid]) for pid, _ in ended):
        time.sleep(0.05)
    return ended


def _log_line(path: str | None, text: str) -> None:
    """Append to the run log in the format of runlog.py (the supervisor cannot use logging's handler)."""
    if not path:
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S") + f",{int(time.time() * 1000) % 1000:03d}"
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {os.getpid()} supervisor WARNING pytest_codeeval.supervisor: {text}\n")
    except OSError:
        pass


# -- the supervisor process ---------------------------------------------------------


class Watch:
    def __init__(self, record: str | None, log: str | None) -> None:
        self.record = record
        self.log = log
        self.procs: dict[int, int | None] = {}


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):  # Python < 3.9, kernel < 5.3, or already gone
        return None


def serve(owner: tuple[int, int], run: tuple[int, int] | None) -> int:
    watched: dict[str, Watch] = {}
    stdin = sys.stdin.fileno()
    buffered = b""
    stdin_open = True
    pidfds = [fd for fd in (_open_pidfd(owner[0]), _open_pidfd(run[0]) if run else None) if fd is not None]
    while True:
        readable, _, _ = select.select(([stdin] if stdin_open else []) + pidfds, [], [], POLL_S)
        if stdin in readable:
            chunk = os.read(stdin, 65536)
            if not chunk:
                # The owner closed its end: it died, or it exits now. Only its
                # death (checked below) ends the engines.
                stdin_open = False
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                msg = json.loads(line)
                if msg.get("stop"):
                    return 0
                if "watch" in msg:
                    watched[msg["watch"]] = Watch(msg.get("record"), msg.get("log"))
                elif "pids" in msg and msg["pids"] in watched:
                    watched[msg["pids"]].procs.update({int(p): int(s) for p, s in msg["procs"]})
                elif "forget" in msg:
                    watched.pop(msg["forget"], None)
        owner_dead = not is_alive(*owner)
        run_dead = run is not None and not is_alive(*run)
        if owner_dead or run_dead:
            gone = f"pytest process {owner[0]}" if owner_dead else f"xdist controller {run[0]}"  # type: ignore[index]
            _end_all(watched, owner, killed_owner=not owner_dead, why=f"the {gone} is gone")
            return 0


def _end_all(watched: dict[str, Watch], owner: tuple[int, int], killed_owner: bool, why: str) -> None:
    t0 = time.monotonic()
    targets: dict[int, int | None] = {}
    if killed_owner:
        targets[owner[0]] = owner[1]  # a worker whose controller died has no one to report to
    for token, watch in watched.items():
        targets.update({pid: start for pid, start in watch.procs.items()})
        targets.update(token_holders(token, exclude={os.getpid()}))
    ended = end_processes(targets)
    took = time.monotonic() - t0
    if ended:
        text = (f"{why}: ended {len(ended)} process(es) it had started in {took:.2f} s: "
                + ", ".join(f"{pid} {what}" for pid, what in ended))
    else:
        text = f"{why}: none of its engine processes was left"
    for watch in watched.values():
        if watch.record:
            try:
                os.unlink(watch.record)
            except OSError:
                pass
    for log in {w.log for w in watched.values() if w.log}:
        _log_line(log, text)


def main(argv: list[str]) -> int:
    # Ctrl-C in the terminal goes to pytest, not here (another session); a
    # hang-up must not end the supervisor before its owner.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    owner = (int(argv[0]), int(argv[1]))
    run = (int(argv[2]), int(argv[3])) if len(argv) >= 4 else None
    return serve(owner, run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
