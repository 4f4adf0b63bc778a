"""Per-sample limits, and time limits calibrated from the reference solution.

As EvalPlus does: a test's time limit is max(floor, factor x the reference
solution's measured runtime), measured once in this sandbox and cached on disk
(keyed by the item's code and the interpreter), so later runs skip it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..items import Item

GiB = 1024 ** 3
MiB = 1024 ** 2


@dataclass(frozen=True)
class Limits:
    """What one sample may use. Times are wall-clock seconds, enforced by the judge."""

    call_floor_s: float = 1.0  # each call of the candidate
    load_floor_s: float = 3.0  # defining the program (module-level code)
    total_floor_s: float = 6.0  # the whole sample
    factor: float = 4.0  # x the reference runtime
    memory_bytes: int = 4 * GiB  # address space of each process (RLIMIT_AS); also the worker's memory cgroup
    processes: int = 16  # RLIMIT_NPROC for the sample's uid
    file_bytes: int = 16 * MiB  # RLIMIT_FSIZE
    open_files: int = 64  # RLIMIT_NOFILE
    tmp_bytes: int = 64 * MiB  # the sample's own /tmp (a tmpfs)
    tmp_inodes: int = 16384  # files and folders in it
    shm_bytes: int = 64 * MiB  # its own /dev/shm
    shm_inodes: int = 1024
    ipc_segments: int = 64  # SysV: segments, queues and semaphore sets (each) in the worker's IPC namespace

    def rlimits(self) -> dict[str, int]:
        return {
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_CORE": 0,
            "RLIMIT_NPROC": self.processes,
        }

    def ipc_sysctls(self) -> dict[str, int]:
        """The worker's IPC namespace's limits: SysV shared memory is not
        address space until attached, so RLIMIT_AS does not bound it."""
        pages = self.memory_bytes // 4096
        return {"shmmax": self.memory_bytes, "shmall": pages, "shmmni": self.ipc_segments,
                "msgmni": self.ipc_segments, "msgmnb": 1 * MiB, "msgmax": 64 * 1024,
                "sem": f"250 {250 * self.ipc_segments} 32 {self.ipc_segments}"}  # type: ignore[dict-item]

    def cgroup_bytes(self) -> int:
        """The worker's memory cgroup: the sample's memory, its scratch folders, and the server (~50 MiB)."""
        return self.memory_bytes + self.tmp_bytes + self.shm_bytes + 128 * MiB


@dataclass(frozen=True)
class Timing:
    """Measured runtime of a reference solution."""

    load_s: float
    max_call_s: float
    total_s: float

    def to_dict(self) -> dict[str, float]:
        return {"load_s": self.load_s, "max_call_s": self.max_call_s, "total_s": self.total_s}


@dataclass(frozen=True)
class TimeLimits:
    load_s: float
    call_s: float
    total_s: float

    @classmethod
    def calibrated(cls, limits: Limits, timing: Timing | None) -> "TimeLimits":
        if timing is None:
            return cls(limits.load_floor_s, limits.call_floor_s, limits.total_floor_s)
        return cls(
            max(limits.load_floor_s, limits.factor * timing.load_s),
            max(limits.call_floor_s, limits.factor * timing.max_call_s),
            max(limits.total_floor_s, limits.factor * timing.total_s),
        )


def cache_dir() -> Path:
    """$CODEEVAL_CACHE_DIR, else ~/.cache/pytest-codeeval."""
    env = os.environ.get("CODEEVAL_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-codeeval"


def item_key(item: Item) -> str:
    """Same code, same interpreter -> same timing."""
    h = hashlib.sha256()
    for part in (item.prompt, item.reference, str(item.data.get("test", "")), str(item.data.get("test_setup", "")),
                 str(item.data.get("entry_point", "")), sys.version):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


class TimingCache:
    """Reference timings on disk: <cache_dir>/sandbox/timings.json."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "sandbox" / "timings.json"
        self._lock = threading.Lock()
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text())
                if not isinstance(self._data, dict):
                    self._data = {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def get(self, item: Item) -> Timing | None:
        with self._lock:
            entry = self._load().get(item_key(item))
        if not isinstance(entry, dict):
            return None
        try:
            return Timing(float(entry["load_s"]), float(entry["max_call_s"]), float(entry["total_s"]))
        except (KeyError, TypeError, ValueError):
            return None

    def put_many(self, timings: dict[str, Timing]) -> None:
        """Merge and write atomically (rename), so concurrent runs never see half a file."""
        if not timings:
            return
        with self._lock:
            data = self._load()
            data.update({k: t.to_dict() for k, t in timings.items()})
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".timings-")
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f)
                os.replace(tmp, self.path)
            except OSError:
                pass  # a read-only cache only costs a re-measurement next time
