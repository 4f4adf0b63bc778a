"""A pool of warm fork-servers (one per core) that judges many samples in parallel.

Each worker thread owns one sandboxed server and judges samples one at a
time with it; the sample processes run in parallel, the threads only wait on
sockets and run the (short) test code.  A sandbox failure is retried once on
a fresh server; a timeout is re-run once, alone, to tell flakes from hangs.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Sequence

from .isolation import probe_isolation
from .judge import CallLog, Outcome, SampleJob, judge_sample
from .limits import Limits
from .worker import SandboxBroken, Worker


# Servers per core.  On a quiet 2-core machine one per core was fastest
# (1,640-sample benchmark: 10.1 s with 2 servers, 11.4 s with 4); on a busy
# one more servers won a larger share of the CPU (4 beat 2 by about a third at
# load 8), which measures the scheduler more than the sandbox.
SERVERS_PER_CORE = 1
MAX_DEFAULT_WORKERS = 32


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, SERVERS_PER_CORE * cores))


class SandboxPool:
    """Use as a context manager (or call close()): no process outlives it."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None, level: str | None = None) -> None:
        self.limits = limits or Limits()
        self.level = level or probe_isolation()
        self.size = workers or default_workers()
        self._workers = [Worker(i, self.level, self.limits.output_bytes, self.limits.rlimits()) for i in range(self.size)]
        self.stats = {"sandbox_retries": 0, "timeout_reruns": 0, "flaky_timeouts": 0}
        self.calls = CallLog()  # each test's calls, learnt from passing runs (see judge.py)

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for w in self._workers:
            w.close()

    def _judge(self, worker: Worker, job: SampleJob, force_sandbox: bool, predict: bool = True) -> Outcome:
        """One sample; a sandbox failure gets one more try on a fresh server."""
        last = ""
        for attempt in range(2):
            try:
                worker.ensure_started()
                return judge_sample(worker, job, self.limits, force_sandbox, self.calls, predict)
            except SandboxBroken as e:
                last = str(e)
                worker.kill()
                if attempt == 0:
                    self.stats["sandbox_retries"] += 1
        return Outcome("sandbox_error", f"sandbox failed twice: {last[:300]}")

    def run(self, jobs: Sequence[SampleJob], force_sandbox: Sequence[bool] | None = None,
            rerun_timeouts: bool = True, predict: bool = True) -> list[Outcome]:
        """Judge ``jobs`` in parallel. ``predict=False`` for runs whose timings
        matter (calibration): every call then goes out only when the test makes it."""
        results: list[Outcome | None] = [None] * len(jobs)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(jobs)):
            todo.put(i)
        flags = list(force_sandbox) if force_sandbox is not None else [False] * len(jobs)

        def loop(worker: Worker) -> None:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = self._judge(worker, jobs[i], flags[i], predict)
                except BaseException as e:  # never lose a sample: a harness bug is a sandbox error
                    results[i] = Outcome("sandbox_error", f"judge error: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in self._workers[: max(1, min(self.size, len(jobs)))]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out = [r if r is not None else Outcome("sandbox_error", "not judged") for r in results]
        if rerun_timeouts:
            # alone: the other servers are idle, so a loaded machine is not the cause
            for i, o in enumerate(out):
                if o.verdict != "timeout":
                    continue
                self.stats["timeout_reruns"] += 1
                # without predictions: the parallel run already re-ran it lazily
                # if it was predicted, so this is the third look, not the fourth
                again = self._judge(self._workers[0], jobs[i], flags[i], predict=False)
                if again.verdict == "timeout":
                    again.detail = f"{again.detail} (also when re-run alone)"
                else:
                    self.stats["flaky_timeouts"] += 1
                    again.detail = f"{again.detail} (timed out in the parallel run, not when re-run alone)".strip()
                out[i] = again
        return out


def run_jobs(jobs: Sequence[SampleJob], limits: Limits | None = None, workers: int | None = None) -> list[Outcome]:
    """Judge ``jobs`` with a fresh pool, closed afterwards."""
    with SandboxPool(workers, limits) as pool:
        return pool.run(jobs)


__all__ = ["SandboxPool", "run_jobs", "default_workers"]
