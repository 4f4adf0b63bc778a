"""GPU placement: which devices each engine of this process uses.

``--gpus LIST`` names the devices a run may use, as CUDA_VISIBLE_DEVICES
names them (default: every visible GPU: $CUDA_VISIBLE_DEVICES, else every
device NVML sees; none on a machine without CUDA).  Under pytest-xdist the
list is cut into one equal, disjoint slice per worker, and each worker
narrows CUDA_VISIBLE_DEVICES to its slice before any engine starts, so four
workers never build four engines on GPU 0.  A model x preset runs on the
first ``tensor_parallel_size x data_parallel`` devices of its worker's slice
(its cases stay on one worker: the xdist_group mark); models of one worker
run one after another.  A model that needs more devices than a worker has
is a usage error, before anything loads.

Device ids are kept as given; they are recorded with each case
(``performance.devices``).  With ``--gpus`` on a machine without CUDA the
assignment still happens and is recorded, which is how CI tests it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import CodeevalError

VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpus() -> list[str]:
    """The GPUs this process may use: $CUDA_VISIBLE_DEVICES, else every device NVML sees."""
    env = os.environ.get(VISIBLE_ENV)
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML, no driver, no GPU
        return []


def parse_gpus(raw: str | None) -> list[str]:
    """--gpus: "0,1,2,3", "all" (default: every visible GPU) or "none"."""
    if raw is None or raw.strip().lower() == "all":
        return visible_gpus()
    if raw.strip().lower() == "none":
        return []
    devices = [d.strip() for d in raw.split(",") if d.strip()]
    if len(set(devices)) != len(devices):
        raise CodeevalError(f"--gpus {raw}: a device is listed twice. List each device once, e.g. --gpus=0,1,2,3.")
    return devices


@dataclass(frozen=True)
class Placement:
    """The devices of this process (an xdist worker's slice, or all of them)."""

    devices: tuple[str, ...]
    workers: int = 1  # processes the run's devices are shared between
    total: int = 0  # the run's devices, all workers together

    @classmethod
    def for_worker(cls, gpus: list[str], worker_index: int, worker_count: int) -> "Placement":
        if not gpus:
            return cls((), worker_count, 0)
        per = len(gpus) // max(1, worker_count)
        if per == 0:
            raise CodeevalError(
                f"{worker_count} xdist workers but {len(gpus)} GPU(s) ({','.join(gpus)}): each worker needs its own. "
                f"Use -n {len(gpus)} or fewer, or give more devices with --gpus."
            )
        return cls(tuple(gpus[worker_index * per:(worker_index + 1) * per]), worker_count, len(gpus))

    def check(self, model: str, tensor_parallel: int, data_parallel: int) -> None:
        """A usage error when a model needs more devices than this process has."""
        need = tensor_parallel * data_parallel
        if self.devices and need > len(self.devices):
            where = (f"each of the {self.workers} xdist workers has {len(self.devices)} of the {self.total} GPUs"
                     if self.workers > 1 else f"this run has {len(self.devices)} GPU(s) ({','.join(self.devices)})")
            raise CodeevalError(
                f"model {model!r} needs {need} GPU(s) (tensor_parallel_size {tensor_parallel} x data parallel "
                f"{data_parallel}) but {where}. "
                + (f"Use fewer workers (-n {max(1, self.total // need)}) or " if self.workers > 1 else "")
                + "give more devices with --gpus, or lower --data-parallel."
            )

    def for_engine(self, tensor_parallel: int, data_parallel: int) -> list[list[str]]:
        """Per replica, the devices of an engine (empty lists without GPUs)."""
        if not self.devices:
            return [[] for _ in range(data_parallel)]
        return [list(self.devices[r * tensor_parallel:(r + 1) * tensor_parallel]) for r in range(data_parallel)]

    def apply(self) -> None:
        """Narrow this process's CUDA_VISIBLE_DEVICES to its slice (before any engine starts).

        NVML numbers devices in PCI order; CUDA by speed unless told: PCI
        order keeps the two in step for the memory readings."""
        if self.devices:
            os.environ[VISIBLE_ENV] = ",".join(self.devices)
            os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


def device_ids(devices: list[str]) -> list[int | str]:
    """Devices as recorded: integers where they are indices."""
    return [int(d) if d.isdigit() else d for d in devices]


__all__ = ["Placement", "parse_gpus", "visible_gpus", "device_ids", "VISIBLE_ENV"]
