"""Peak memory of an engine: GPU through NVML, CPU as the RSS of the engine processes.

vLLM runs its engine core in a child process (spawned), so the parent's own
RSS or ``torch.cuda.max_memory_allocated`` misses most of it. On the CPU we
sum the RSS of the engine's own processes (not pytest's); on the GPU we read
the used memory of the engine's devices through NVML (every device of a
tensor-parallel model, summed) and subtract what was used before the model
loaded: for vLLM that is what it reserved (its memory fraction of each
device), not what the model needed. A background thread samples while a
load or a generation runs, so the figure is a peak, not an end state.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

GIB = 1024**3


def process_tree_rss(pid: int | None = None) -> int:
    """RSS in bytes of a process and all its descendants (0 where psutil is missing)."""
    return rss_of({pid or os.getpid()})


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
    """Device memory through NVML (package nvidia-ml-py); ``available`` is False without it.

    ``device``: an index as CUDA_VISIBLE_DEVICES names it (NVML numbers devices
    in PCI order: placement sets CUDA_DEVICE_ORDER=PCI_BUS_ID so the two agree),
    or a GPU UUID."""

    def __init__(self, device: int | str = 0) -> None:
        self.available = False
        self._handle: Any = None
        self.device = str(device)
        try:
            import pynvml

            pynvml.nvmlInit()
            if self.device.isdigit():
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(int(self.device))
            else:
                self._handle = pynvml.nvmlDeviceGetHandleByUUID(self.device)
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


class NvmlGroup:
    """The devices of one engine (tensor parallel, data parallel), summed."""

    def __init__(self, devices: list[str] | None = None) -> None:
        self.members = [Nvml(d) for d in (devices or ["0"])]

    def info(self) -> tuple[int, int, int]:
        """(used, free, total) bytes over every device of the engine."""
        used = free = total = 0
        for m in self.members:
            u, f, t = m.info()
            used, free, total = used + u, free + f, total + t
        return used, free, total

    def per_device(self) -> dict[str, tuple[int, int, int]]:
        return {m.device: m.info() for m in self.members}

    def name(self) -> str:
        names = [m.name() for m in self.members]
        return names[0] if len(names) == 1 else f"{len(names)} x {names[0]}"


def rss_of(pids: set[int]) -> int:
    """RSS in bytes of these processes and their descendants."""
    try:
        import psutil
    except ImportError:
        return 0
    seen: set[int] = set()
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
    return total


class PeakSampler:
    """Samples memory in a thread while a ``with`` block runs; ``peak`` is in bytes.

    ``kind`` is "gpu" (the engine's devices' used memory minus ``baseline``;
    ``nvml`` is an Nvml or NvmlGroup) or "cpu_rss" (the RSS of the processes
    ``pids()`` names, with their descendants: an engine's own processes;
    without ``pids``, this process and its children).
    """

    def __init__(self, kind: str, nvml: Any = None, baseline: int = 0, interval_s: float = 0.2,
                 pids: Callable[[], set[int]] | None = None) -> None:
        self.kind = kind
        self.nvml = nvml
        self.baseline = baseline
        self.interval_s = interval_s
        self.pids = pids
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        if self.kind == "gpu" and self.nvml is not None:
            used = self.nvml.info()[0] - self.baseline
        elif self.pids is not None:
            used = rss_of(self.pids())
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
