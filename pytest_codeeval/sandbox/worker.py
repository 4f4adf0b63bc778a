"""One sandboxed fork-server: start it, hand it samples, kill it from outside.

The server runs inside the isolation level's sandbox; the judge talks to it
on a private control socket and to each sample on a fresh socket pair whose
far end travels to the sample through the server (SCM_RIGHTS).  The server
always holds one child ready for the next sample (forked and set up while the
judge finishes the previous one), so starting a sample is one message.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from . import isolation
from .limits import Limits
from .resources import MemoryCgroup
from .server import WireError, recv_msg, send_msg, remove_tree

SERVER_SOURCE = Path(__file__).with_name("server.py").read_text()
# The last argument of every sandbox command line: finds leftovers (tests, ps).
SERVER_MARK_ARG = "codeeval-sandbox-server"


def started_by(cmdline: list[str], pid: int) -> bool:
    """Whether a sandbox command line (marked with SERVER_MARK_ARG) was started by harness ``pid``."""
    return SERVER_MARK_ARG in cmdline and any(f'"harness": {pid},' in arg for arg in cmdline)
START_TIMEOUT_S = 30.0
END_TIMEOUT_S = 15.0
# rlimits level: the server answers "end" after removing what the sample
# wrote to the host's disk, which can take a while (not counted against the
# next sample, but it must not be mistaken for a broken sandbox)
END_TIMEOUT_RLIMITS_S = 120.0


class SandboxBroken(Exception):
    """The sandbox itself failed (not the sample): retried once, then a sandbox_error."""


class Worker:
    """A warm fork-server in its own sandbox (own pid namespace where available).

    ``sample_uid``: the uid samples run under (root only; leased for this run,
    see resources.py).  ``cgroup``: the memory cgroup the server joins.
    """

    def __init__(self, index: int, level: str, limits: Limits, sample_uid: int | None = None,
                 cgroup: MemoryCgroup | None = None, cgroup_why: str = "", syscall_filter: bool = True) -> None:
        self.index = index
        self.level = level
        self.limits = limits
        self.proc: subprocess.Popen[bytes] | None = None
        self.ctrl: socket.socket | None = None
        self._next: socket.socket | None = None  # the judge's end of the ready child's socket
        self.sample_uid = sample_uid
        self.cgroup = cgroup
        self.cgroup_why = cgroup_why
        self.syscall_filter = syscall_filter
        self.protections: dict[str, Any] = {}
        # rlimits level: the samples' working folders (other levels have a private /tmp)
        self.workdir_base = os.path.join(tempfile.gettempdir(), f"codeeval-sandbox-{os.getpid()}-{index}-{id(self)}")

    # -- life cycle ---------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.ctrl is not None

    def ensure_started(self) -> None:
        if not self.alive:
            self.kill()
            self.start()

    def _conf(self, ctrl_fd: int, cgroup_fd: int | None) -> dict[str, Any]:
        namespaces = self.level in ("bubblewrap", "namespaces")
        lim = self.limits
        return {
            "ctrl_fd": ctrl_fd,
            "harness": os.getpid(),  # on the command line: whose sandbox this is (leak checks)
            "rlimits": lim.rlimits(),
            "sample_uid": self.sample_uid,
            "pid_namespace": namespaces,
            "ipc_namespace": namespaces,
            "private_mounts": namespaces,
            "scratch": {"tmp_bytes": lim.tmp_bytes, "tmp_inodes": lim.tmp_inodes,
                        "shm_bytes": lim.shm_bytes, "shm_inodes": lim.shm_inodes},
            "ipc_limits": lim.ipc_sysctls(),
            "tmp_keep": isolation.dirs_under_tmp() if namespaces else [],
            "workdir_base": self.workdir_base,
            "cgroup_fd": cgroup_fd,
            "cgroup_why": self.cgroup_why,
            "seccomp": self.syscall_filter,
            "sys_path": isolation.site_dirs(),
            "hide": isolation.hidden_paths() if self.level == "namespaces" else [],
            "open_up": isolation.closed_ancestors() if self.level == "namespaces" and self.sample_uid is not None else {},
        }

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        cgroup_fd = self.cgroup.procs_fd() if self.cgroup is not None else None
        conf = self._conf(fd, cgroup_fd)
        if self.level == "bubblewrap":
            prefix = isolation.bwrap_prefix()
        elif self.level == "namespaces":
            prefix = isolation.unshare_prefix()
        else:
            prefix = []
        argv = [*prefix, isolation.interpreter(), "-I", "-S", "-c", SERVER_SOURCE, json.dumps(conf), SERVER_MARK_ARG]
        stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                argv, pass_fds=(fd,) if cgroup_fd is None else (fd, cgroup_fd), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr, env=dict(isolation.SERVER_ENV), cwd="/",
                start_new_session=True,  # our own group: the harness's Ctrl-C is not theirs
            )
        except OSError as e:
            stderr.close()
            raise SandboxBroken(f"cannot start the sandbox ({self.level}): {e}") from None
        finally:
            theirs.close()
            if cgroup_fd is not None:
                os.close(cgroup_fd)
        ours.settimeout(START_TIMEOUT_S)
        try:
            hello = recv_msg(ours)
            if not hello.get("ready"):
                raise WireError(str(hello))
        except (OSError, EOFError, WireError) as e:
            ours.close()
            self.kill()
            stderr.seek(0)
            err = stderr.read()[-2000:].decode("utf-8", "replace")
            stderr.close()
            raise SandboxBroken(f"the sandbox server ({self.level}) did not start: {e} {err}".strip()) from None
        stderr.close()
        self.protections = dict(hello.get("protections") or {})
        self.ctrl = ours
        self._prepare()

    def _prepare(self) -> None:
        """Have the server fork (and set up) the child for the next sample now."""
        judge_end, sample_end = socket.socketpair()
        try:
            send_msg(self.ctrl, {"op": "prepare"}, fds=[sample_end.fileno()])
        except OSError as e:
            judge_end.close()
            raise SandboxBroken(f"cannot reach the sandbox server: {e}") from None
        finally:
            sample_end.close()
        self._next = judge_end

    def _drop_next(self) -> None:
        if self._next is not None:
            self._next.close()  # a child waiting for a job sees EOF and exits
            self._next = None

    def kill(self) -> None:
        """Kill the sandbox from outside: its whole process tree / pid namespace."""
        self._drop_next()
        if self.ctrl is not None:
            self.ctrl.close()
            self.ctrl = None
        proc, self.proc = self.proc, None
        if proc is None:
            return
        victims: list[psutil.Process] = []
        try:
            root = psutil.Process(proc.pid)
            victims = [root, *root.children(recursive=True)]
        except psutil.Error:
            pass
        if self.sample_uid is not None and self.level == "rlimits":
            # no pid namespace: anything the sample's uid runs belongs to this worker
            victims += [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == self.sample_uid]
        for p in victims:  # stop first, so nothing forks while we kill
            try:
                p.send_signal(signal.SIGSTOP)
            except psutil.Error:
                pass
        for p in victims:
            try:
                p.kill()
            except psutil.Error:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _wait_gone([p for p in victims if p.pid != proc.pid], timeout=10.0)
        self._remove_workdirs()

    def _remove_workdirs(self) -> None:
        """rlimits level: the samples' folders (the server removes each after its sample, unless killed)."""
        if os.path.isdir(self.workdir_base):
            parent, name = os.path.split(self.workdir_base)
            fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                remove_tree(fd, name)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Polite stop (EOF on the control socket), then make sure: returns when
        every process of the sandbox is gone (the outer bwrap can exit while the
        inner one still tears its namespaces down)."""
        tree: list[psutil.Process] = []
        if self.proc is not None:
            try:
                root = psutil.Process(self.proc.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                pass
        self._drop_next()
        if self.ctrl is not None:
            self.ctrl.close()
            self.ctrl = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        _wait_gone(tree, timeout=10.0)

    # -- one sample ---------------------------------------------------------

    def begin(self, job: dict[str, Any]) -> socket.socket:
        """Hand ``job`` to the ready child; returns the judge's end of its socket."""
        if not self.alive:
            raise SandboxBroken("the sandbox server is not running")
        if self._next is None:
            self._prepare()
        conn, self._next = self._next, None
        try:
            # The child reads its job before any sample code runs; a child that
            # cannot take it in this long is a broken sandbox, not a slow sample.
            conn.settimeout(END_TIMEOUT_S)
            send_msg(conn, job)
        except OSError as e:
            conn.close()
            self.kill()
            raise SandboxBroken(f"cannot reach the sample process: {e!r}") from None
        return conn

    def end(self, status: bool = True) -> dict[str, Any]:
        """The sample is over: the server kills what is left and reports.

        ``status``: wait for the sample's exit status (only needed when the
        sample died on its own); without it the server answers right after
        the kill.  The socket for the next sample's child goes along.
        """
        if not self.alive:
            raise SandboxBroken("the sandbox server is not running")
        judge_end, sample_end = socket.socketpair()
        try:
            send_msg(self.ctrl, {"op": "end", "status": status}, fds=[sample_end.fileno()])
            slow = self.protections.get("fresh_tmp_per_sample") is not True  # (never set at the rlimits level)
            self.ctrl.settimeout(END_TIMEOUT_RLIMITS_S if slow else END_TIMEOUT_S)
            reply = recv_msg(self.ctrl)
        except (OSError, EOFError, WireError) as e:
            judge_end.close()
            self.kill()
            raise SandboxBroken(f"the sandbox server stopped answering: {e!r}") from None
        finally:
            sample_end.close()
        self._next = judge_end
        if not isinstance(reply, dict) or "status" not in reply:
            self.kill()
            raise SandboxBroken(f"unexpected reply from the sandbox server: {str(reply)[:200]}")
        return reply


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until each process is gone or a zombie (psutil.wait_procs polls too slowly
    for processes that are not our children)."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending and time.monotonic() < deadline:
        still = []
        for p in pending:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    still.append(p)
            except psutil.Error:
                pass
        pending = still
        if pending:
            time.sleep(0.005)
