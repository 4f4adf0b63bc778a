"""What each sandbox server takes from the machine for one run: a sample uid, a memory cgroup.

Sample uids.  As root, samples run under an unused uid (RLIMIT_NPROC does not
bind uid 0).  The kernel counts processes, keys and IPC objects per uid, so
two runs (two pytest sessions, or the workers of one xdist run) must never
share one: each uid is leased with an exclusive lock on a file of its own,
held for the pool's life and released by the kernel if the run dies.  A uid
that some process still uses, or that names an account, is skipped.

Memory cgroups.  RLIMIT_AS bounds one process's address space, not what a
sample holds in shared memory or tmpfs, nor the sum over its processes.
Where the harness may create cgroups (root, cgroup v1's memory hierarchy or
v2 with the memory controller delegated), each server gets one below the
harness's own cgroup, limited to the sample's memory; the server joins it at
start, so every sample it forks is in it.  The judge reads its OOM-kill
counter to tell "memory" from "crashed".
"""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import tempfile
import time
from pathlib import Path

import psutil

UID_BASE = 61000
UID_SPAN = 1000
_LOCK_DIRS = ("/run/lock/pytest-codeeval", "/run/pytest-codeeval")


def _lock_dir() -> Path:
    for d in (*_LOCK_DIRS, os.path.join(tempfile.gettempdir(), "pytest-codeeval-locks")):
        try:
            os.makedirs(d, mode=0o755, exist_ok=True)
            if os.access(d, os.W_OK):
                return Path(d)
        except OSError:
            continue
    raise OSError("no folder for the sandbox's uid locks")


class UidLease:
    """``count`` sample uids, this run's alone until release()."""

    def __init__(self, count: int) -> None:
        self.uids: list[int] = []
        self._fds: list[int] = []
        folder = _lock_dir()
        busy = {u for p in psutil.process_iter(["uids"]) if p.info["uids"] for u in p.info["uids"]}
        try:
            for uid in range(UID_BASE, UID_BASE + UID_SPAN):
                if len(self.uids) == count:
                    break
                if uid in busy or _is_account(uid):
                    continue
                fd = os.open(folder / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    os.close(fd)
                    if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        continue  # another run's
                    raise
                self.uids.append(uid)
                self._fds.append(fd)
        except BaseException:
            self.release()
            raise
        if len(self.uids) < count:
            self.release()
            raise OSError(f"no free sample uid in {UID_BASE}-{UID_BASE + UID_SPAN - 1}")

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self.uids = []


def _is_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


# --- memory cgroups --------------------------------------------------------


def _own_cgroup() -> tuple[str, Path] | None:
    """("v1" | "v2", the folder of this process's memory cgroup), if one is mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    v1 = v2 = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if "memory" in parts[1].split(","):
            v1 = parts[2]
        elif parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
    for m in mounts:
        fields = m.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        root, point, fstype, opts = fields[3], fields[4], fields[sep + 1], fields[sep + 3] if len(fields) > sep + 3 else ""
        if fstype == "cgroup" and v1 is not None and "memory" in opts.split(","):
            return "v1", _under(point, root, v1)
        if fstype == "cgroup2" and v2 is not None and v1 is None:
            path = _under(point, root, v2)
            try:  # what this cgroup may hand to its children
                usable = "memory" in (path / "cgroup.controllers").read_text().split()
            except OSError:
                usable = False
            if usable:
                return "v2", path
    return None


def _under(point: str, root: str, path: str) -> Path:
    rel = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return Path(point) / ("" if rel == "." else rel)


class MemoryCgroup:
    """One server's cgroup: created limited, joined by the server, removed at close."""

    def __init__(self, version: str, path: Path, limit_bytes: int) -> None:
        self.version = version
        self.path = path
        path.mkdir(mode=0o755)
        try:
            if version == "v1":
                (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
                try:  # with swap accounting, swap counts too
                    (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
                except OSError:
                    pass
            else:
                (path / "memory.max").write_text(str(limit_bytes))
                try:
                    (path / "memory.swap.max").write_text("0")
                except OSError:
                    pass
        except BaseException:
            self.remove()
            raise
        self._seen = self.oom_kills()

    def procs_fd(self) -> int:
        """A descriptor the server writes "0" to, to join (passed into the sandbox)."""
        return os.open(self.path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def new_oom_kills(self) -> int:
        """OOM kills since the last call (the judge asks when a sample died)."""
        now = self.oom_kills()
        new, self._seen = now - self._seen, now
        return new

    def remove(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # processes still leaving
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)


def memory_cgroups(count: int, limit_bytes: int) -> tuple[list[MemoryCgroup], str]:
    """``count`` fresh cgroups (or none, with why)."""
    if os.geteuid() != 0:
        return [], "needs root"
    own = _own_cgroup()
    if own is None:
        return [], "no memory cgroup hierarchy is mounted"
    version, parent = own
    _sweep(parent)
    made: list[MemoryCgroup] = []
    try:
        if version == "v2":
            try:
                (parent / "cgroup.subtree_control").write_text("+memory")
            except OSError as e:
                return [], f"cgroup v2: cannot delegate the memory controller ({e.strerror})"
        for i in range(count):
            made.append(MemoryCgroup(version, parent / f"codeeval-{os.getpid()}-{i}-{time.monotonic_ns()}", limit_bytes))
    except OSError as e:
        for c in made:
            c.remove(0)
        return [], f"cannot create a memory cgroup under {parent} ({e.strerror or e})"
    return made, ""


def _sweep(parent: Path) -> None:
    """Empty cgroups left by runs that died (their harness pid is gone)."""
    try:
        for child in parent.glob("codeeval-*"):
            pid = child.name.split("-")[1]
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                try:
                    child.rmdir()
                except OSError:
                    pass
    except OSError:
        pass
