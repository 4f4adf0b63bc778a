"""Isolated execution of model-written code with verdicts the sample cannot forge.

Public API:
  probe_isolation() -> "bubblewrap" | "namespaces" | "rlimits"   (cached)
  probe_protections() -> what protects the machine and the next sample here (cached; one real server)
  samples_cannot_import(level) -> why samples could import only pre-imported modules ("" if not)
  hide_from_samples(path) -> keep a data folder or file out of every later sandbox
  SandboxPool(workers, limits, level): .run(jobs) -> list[Outcome]; a context manager
  SampleJob, Outcome, VERDICTS, Limits, TimeLimits, TimingCache, safe_text
"""

from __future__ import annotations

from .isolation import LEVELS, hide_from_samples, probe_isolation, probe_protections, samples_cannot_import
from .judge import VERDICTS, Outcome, SampleJob, safe_text
from .limits import Limits, TimeLimits, Timing, TimingCache, cache_dir
from .pool import SandboxPool, default_workers, run_jobs
from .worker import SERVER_MARK_ARG

__all__ = [
    "LEVELS",
    "probe_isolation",
    "probe_protections",
    "samples_cannot_import",
    "hide_from_samples",
    "Outcome",
    "SampleJob",
    "VERDICTS",
    "safe_text",
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
