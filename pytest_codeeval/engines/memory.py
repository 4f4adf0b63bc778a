"""Peak memory of an engine: GPU through NVML, CPU as the RSS of the engine processes.

vLLM runs its engine core in a child process (spawned), so the parent's own
RSS or ``torch.cuda.max_memory_allocated`` misses most of it. On the CPU we
sum the RSS of this process and all its descendants; on the GPU we read the
device's used memory through NVML and subtract what was used before the
model loaded. A background thread samples both while a load or a
generation runs, so the figure is a peak, not an end state.
"""

from __future__ import annotations

import os
import threading
from typing import Any

GIB = 1024**3


def process_tree_rss(pid: int | None = None) -> int:
    """RSS in bytes of a process and all its descendants (0 where psutil is missing)."""
    try:
        import psutil
    except ImportError:
        return 0
    try:
        root = psutil.Process(pid or os.getpid())
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:  # a child that exited between listing and reading
            pass
    return total


def child_pids(pid: int | None = None) -> set[int]:
    """Live descendants of a process (this one by default)."""
    try:
        import psutil

        return {p.pid for p in psutil.Process(pid or os.getpid()).children(recursive=True)}
    except Exception:  # psutil missing or the process is gone
        return set()


def engine_pids(before: set[int]) -> set[int]:
    """Children started since ``before`` that belong to an engine.

    multiprocessing's resource tracker is also a new child after vLLM spawns
    its engine, but it lives until the parent exits by design: it is neither
    waited for nor killed.
    """
    import psutil

    found = set()
    for pid in child_pids() - before:
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" not in cmdline and "semaphore_tracker" not in cmdline:
            found.add(pid)
    return found


def wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    """Wait until these processes have exited; kill the ones left at the deadline.

    Returns the pids that were still alive at the deadline (and got killed).
    """
    if not pids:
        return set()
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    if alive:
        psutil.wait_procs(alive, timeout=5)
    return {p.pid for p in alive}


class Nvml:
    """Device memory through NVML (package nvidia-ml-py); ``available`` is False without it."""

    def __init__(self, index: int = 0) -> None:
        self.available = False
        self._handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._pynvml = pynvml
            self.available = True
        except Exception:  # no package, no driver or no device: fall back to torch
            self.available = False

    def info(self) -> tuple[int, int, int]:
        """(used, free, total) bytes of the device."""
        if self.available:
            mem = self._pynvml.nvmlDeviceGetMemoryInfo(self._handle)
            return int(mem.used), int(mem.free), int(mem.total)
        import torch  # torch's view of the whole device (cudaMemGetInfo), not just this process

        free, total = torch.cuda.mem_get_info()
        return total - free, free, total

    def name(self) -> str:
        if self.available:
            name = self._pynvml.nvmlDeviceGetName(self._handle)
            return name.decode() if isinstance(name, bytes) else str(name)
        import torch

        return torch.cuda.get_device_name(0)


class PeakSampler:
    """Samples memory in a thread while a ``with`` block runs; ``peak`` is in bytes.

    ``kind`` is "gpu" (device used memory minus ``baseline``) or "cpu_rss"
    (RSS of this process and its children).
    """

    def __init__(self, kind: str, nvml: Nvml | None = None, baseline: int = 0, interval_s: float = 0.2) -> None:
        self.kind = kind
        self.nvml = nvml
        self.baseline = baseline
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        if self.kind == "gpu" and self.nvml is not None:
            used = self.nvml.info()[0] - self.baseline
        else:
            used = process_tree_rss()
        self.peak = max(self.peak, used)
        return used

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # never let a sampling hiccup break a generation
                pass

    def __enter__(self) -> "PeakSampler":
        self.sample()
        self._thread = threading.Thread(target=self._run, name="codeeval-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.sample()
        except Exception:
            pass
