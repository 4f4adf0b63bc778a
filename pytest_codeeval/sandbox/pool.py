"""A pool of warm fork-servers that judges many samples in parallel.

Each worker thread owns one sandboxed server and judges samples one at a
time with it; the sample processes run in parallel, the threads wait on
sockets and run the test code.  The threads live as long as the pool: bwrap's
--die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that started it
ends, so a server started by a short-lived thread died with it.  A sandbox
failure is retried once on a fresh server; a timeout is re-run once, alone,
to tell flakes from hangs.  Every sample gets an outcome, whatever happens to
a thread.

The pool leases what the servers take from the machine for its life: as
root, one sample uid per server that no other run uses, and a memory cgroup
per server where the harness may create one (resources.py).
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Sequence

from .isolation import is_root, probe_isolation
from .judge import Outcome, SampleJob, judge_sample
from .limits import Limits
from .resources import MemoryCgroup, UidLease, memory_cgroups
from .worker import SandboxBroken, Worker

# Servers per core.  Without predicted calls every call of the candidate is a
# round trip between the judge and the sample, and each hop waits for the
# scheduler: a second server per core keeps the cores busy meanwhile
# (measured in README, "The sandbox").
SERVERS_PER_CORE = 2
MAX_DEFAULT_WORKERS = 32


def default_workers() -> int:
    """Two servers per core, shared among pytest-xdist's workers (each runs a pool of its own)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        processes = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        processes = 1
    return max(1, min(MAX_DEFAULT_WORKERS, SERVERS_PER_CORE * cores // processes))


class SandboxPool:
    """Use as a context manager (or call close()): no process outlives it."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None, level: str | None = None,
                 syscall_filter: bool = True) -> None:
        """``syscall_filter=False`` leaves the seccomp filter out (to test what stands without it)."""
        self.limits = limits or Limits()
        self.level = level or probe_isolation()
        self.size = workers or default_workers()
        self.stats = {"sandbox_retries": 0, "timeout_reruns": 0, "flaky_timeouts": 0}
        self._uids = UidLease(self.size) if is_root() else None
        cgroups, why = memory_cgroups(self.size, self.limits.cgroup_bytes())
        self._cgroups: list[MemoryCgroup] = cgroups
        uids = self._uids.uids if self._uids else [None] * self.size
        self._workers = [Worker(i, self.level, self.limits, uids[i], cgroups[i] if cgroups else None, why,
                                syscall_filter) for i in range(self.size)]
        self._threads: list[_WorkerThread] = []

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for t in self._threads:  # each closes its own server, then ends
            t.stop()
        self._threads = []
        for w in self._workers:
            w.close()
        for c in self._cgroups:
            c.remove()
        self._cgroups = []
        if self._uids is not None:
            self._uids.release()

    @property
    def protections(self) -> dict[str, Any]:
        """What the servers set up (from their own reports), with the level; see isolation.describe()."""
        from .isolation import describe

        started = [w.protections for w in self._workers if w.protections]
        return describe(self.level, started[0] if started else None, self._uids is not None)

    def _judge(self, worker: Worker, job: SampleJob, measure: bool) -> Outcome:
        """One sample; a sandbox failure gets one more try on a fresh server."""
        last = ""
        for attempt in range(2):
            try:
                worker.ensure_started()
                return judge_sample(worker, job, self.limits, measure)
            except SandboxBroken as e:
                last = str(e)
                worker.kill()
                if attempt == 0:
                    self.stats["sandbox_retries"] += 1
        return Outcome("sandbox_error", f"sandbox failed twice: {last[:300]}")

    def _judge_safely(self, worker: Worker, job: SampleJob, measure: bool) -> Outcome:
        try:
            return self._judge(worker, job, measure)
        except BaseException as e:  # a harness bug: this sample's error, never the run's
            try:
                worker.kill()
            except BaseException:
                pass
            return Outcome("sandbox_error", f"judge error: {type(e).__name__}: {str(e)[:300]}")

    def warm_up(self, servers: int = 1) -> dict[str, Any]:
        """Start the first ``servers`` servers now (each by its own thread); returns the protections."""
        for d in [self._thread(i).submit(lambda w: w.ensure_started()) for i in range(min(servers, self.size))]:
            d.wait()
        return self.protections

    def _thread(self, i: int) -> "_WorkerThread":
        while len(self._threads) <= i:
            self._threads.append(_WorkerThread(self._workers[len(self._threads)]))
        return self._threads[i]

    def run(self, jobs: Sequence[SampleJob], rerun_timeouts: bool = True, measure: bool = False) -> list[Outcome]:
        """Judge ``jobs`` in parallel. ``measure=True`` for runs whose timings
        matter (calibration): the program's loading is timed apart from the calls."""
        results: list[Outcome | None] = [None] * len(jobs)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(jobs)):
            todo.put(i)

        def drain(worker: Worker) -> None:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                results[i] = self._judge_safely(worker, jobs[i], measure)

        done = [self._thread(i).submit(drain) for i in range(max(1, min(self.size, len(jobs))))]
        for d in done:
            d.wait()
        out = [r if r is not None else Outcome("sandbox_error", "not judged") for r in results]
        if rerun_timeouts:
            # alone: the other servers are idle, so a loaded machine is not the cause
            for i, o in enumerate(out):
                if o.verdict != "timeout":
                    continue
                self.stats["timeout_reruns"] += 1
                box: list[Outcome] = []
                self._thread(0).submit(lambda w, i=i: box.append(self._judge_safely(w, jobs[i], measure))).wait()
                again = box[0] if box else Outcome("sandbox_error", "not judged")
                if again.verdict == "timeout":
                    again.detail = f"{again.detail} (also when re-run alone)"
                else:
                    self.stats["flaky_timeouts"] += 1
                    again.detail = f"{again.detail} (timed out in the parallel run, not when re-run alone)".strip()
                out[i] = again
        return out


class _WorkerThread:
    """The one thread that starts, uses and closes a worker's server, for the pool's life."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._tasks: queue.SimpleQueue[tuple[Callable[[Worker], None], threading.Event] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"codeeval-sandbox-{worker.index}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            fn, done = task
            try:
                fn(self.worker)
            except BaseException:  # never lose the thread (and with it its server)
                pass
            finally:
                done.set()

    def submit(self, fn: Callable[[Worker], None]) -> threading.Event:
        done = threading.Event()
        self._tasks.put((fn, done))
        return done

    def stop(self) -> None:
        self.submit(lambda w: w.close()).wait(timeout=60)
        self._tasks.put(None)
        self._thread.join(timeout=60)


def run_jobs(jobs: Sequence[SampleJob], limits: Limits | None = None, workers: int | None = None) -> list[Outcome]:
    """Judge ``jobs`` with a fresh pool, closed afterwards."""
    with SandboxPool(workers, limits) as pool:
        return pool.run(jobs)


__all__ = ["SandboxPool", "run_jobs", "default_workers", "SERVERS_PER_CORE"]
