"""Isolated execution of model-written code with verdicts the sample cannot forge.

Public API:
  probe_isolation() -> "bubblewrap" | "namespaces" | "rlimits"   (cached)
  samples_cannot_import(level) -> why samples could import only pre-imported modules ("" if not)
  SandboxPool(workers, limits, level): .run(jobs) -> list[Outcome]; a context manager
  SampleJob, Outcome, Limits, TimeLimits, TimingCache
"""

from __future__ import annotations

from .isolation import LEVELS, probe_isolation, samples_cannot_import
from .judge import Outcome, SampleJob
from .limits import Limits, TimeLimits, Timing, TimingCache, cache_dir
from .pool import SandboxPool, default_workers, run_jobs
from .worker import SERVER_MARK_ARG

__all__ = [
    "LEVELS",
    "probe_isolation",
    "samples_cannot_import",
    "Outcome",
    "SampleJob",
    "Limits",
    "TimeLimits",
    "Timing",
    "TimingCache",
    "cache_dir",
    "SandboxPool",
    "default_workers",
    "run_jobs",
    "SERVER_MARK_ARG",
]
