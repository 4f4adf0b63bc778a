"""The controller's side of a Ray run: every model's work submitted when the
session starts, each chunk stored the moment it returns.

When the run starts (after collection: the plan and the selected cases are
known) the dispatcher checks that the cluster can hold every engine (a usage
error otherwise, before anything loads), then starts one job per model x
preset: the requests the store lacks, cut into chunks of ``--ray-chunk``,
go to that engine's replicas (one thread each, each bound to its actor)
through the engine's CachingEngine, which stores every chunk's answers and
its call (wall time, tokens, where it ran) when the chunk returns.  All
engines generate at the same time, as far as the cluster has room (Ray
queues the rest); an engine gives its resources back as soon as its work is
stored, not when pytest reaches its cases.

The cases run as usual: a model's engine fixture waits for its job (its
progress sink, progress.py, counts the prompts left as their chunks are
stored), then finds every answer in the store.  A controller that dies
loses nothing that came back (a rerun generates only what is missing); a
node that dies loses the chunk in flight, which goes back to the queue for
a new replica wherever the cluster has room.  When no replica can be had,
the model's cases fail with the reason and the count of what is missing
(cut short, as those of a local engine that died).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any, Sequence

from .. import defaults
from ..engines.base import Request
from ..engines.cached import CachingEngine
from ..errors import EngineError
from ..identity import generation_identity
from ..items import Generation
from ..plan import split_engine_key
from ..progress import current_sink
from .connect import Cluster, _fmt
from .pool import ClusterEngine, ClusterEngineDied, ReplicaLost

# The controller's settings a node's engine needs (cache dir, offline hub): a node's actors
# inherit that node's `ray start` environment, not the controller's.
FORWARDED_ENV = ("CODEEVAL_", "HF_")


class LockedStore:
    """The dispatcher's own store connection, one writer at a time: replica threads of every
    engine store their chunks through it while the main thread scores."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


def missing_requests(engine: CachingEngine, requests: Sequence[Request]) -> list[Request]:
    """The requests whose samples the store does not hold (all of them with --fresh)."""
    if engine.fresh:
        return list(requests)
    firsts = [engine.keys(r, 1)[0] for r in requests]
    stored = engine.store.get_generations(firsts)
    rest = {i: engine.keys(r, stored[k].n_samples)[1:] for i, (r, k) in enumerate(zip(requests, firsts))
            if k in stored and stored[k].n_samples > 1}
    more = engine.store.get_generations([k for keys in rest.values() for k in keys]) if rest else {}
    return [r for i, (r, k) in enumerate(zip(requests, firsts))
            if k not in stored or any(x not in more for x in rest.get(i, ()))]


class DispatchedEngine(CachingEngine):
    """The caching engine of a model that runs on the cluster: a case's ``generate`` first
    waits for the model's job, then finds its answers stored."""

    job: "EngineJob"

    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        sink = current_sink()  # the fixture's progress of this engine's call: the job's prompts left
        if sink is None or self.job.done.is_set():
            self.job.wait()
        else:
            self.job.report_to(sink)
            try:
                self.job.wait()
            finally:
                sink.finish()
        return super().generate(requests)

    def store_chunk(self, requests: Sequence[Request]) -> list[list[Generation]]:
        """The job's own calls: generate what the store lacks, store it when it returns."""
        return super().generate(requests)


class EngineJob:
    """One model x preset's work on the cluster."""

    def __init__(self, key: str, engine: DispatchedEngine, pool: ClusterEngine, requests: list[Request],
                 chunk: int, replicas: int) -> None:
        self.key = key
        self.engine = engine
        self.pool = pool
        self.requests = requests
        self.chunk = chunk
        self.replicas = replicas
        self.queue: deque[list[Request]] = deque()
        self.total = 0  # requests it had to generate
        self.chunks = 0
        self.in_flight = 0
        self.stored = 0  # prompts generated and stored so far
        self.error: EngineError | None = None
        self.sink: Any = None  # a progress sink (progress.CallProgress) once a fixture waits for the job
        self.unplaced: list[str] = []  # why a replica could not be (re)placed
        self.done = threading.Event()
        self.stopping = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        engine.job = self

    def start(self) -> None:
        missing = missing_requests(self.engine, self.requests)
        if not missing:
            self.done.set()
            return
        self.total = len(missing)
        self.queue.extend(missing[i:i + self.chunk] for i in range(0, len(missing), self.chunk))
        self.chunks = len(self.queue)
        self._thread = threading.Thread(target=self._run, name=f"codeeval-ray-{self.key}", daemon=True)
        self._thread.start()

    def report_to(self, sink: Any) -> None:
        """Count the prompts still to generate into ``sink`` from now on, as their chunks are stored."""
        with self._lock:
            sink.start(self.total - self.stored)
            self.sink = sink

    def wait(self) -> None:
        self.done.wait()
        if self.error is not None:
            raise self.error

    # -- the job's threads ------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.engine.load()  # the pool: replicas start in their own threads
            slots = [threading.Thread(target=self._slot, args=(i,), name=f"codeeval-ray-{self.key}-{i}", daemon=True)
                     for i in range(min(self.replicas, len(self.queue)))]
            for t in slots:
                t.start()
            for t in slots:
                t.join()
        except BaseException as e:  # noqa: BLE001 - whatever it was, the cases must hear of it
            self.error = self.error or EngineError(f"{self.key} on the Ray cluster: {e}")
        finally:
            self.pool.release()  # its resources back to the cluster now, not when pytest reaches its cases
            left = sum(len(c) for c in self.queue)
            # Replicas lost with prompts left: the engine died as far as its cases go (cut short).
            error = ClusterEngineDied if self.pool.lost else EngineError
            if left and self.error is None:
                self.error = error(self._unfinished(left))
            elif left and self.error is not None:
                self.error = error(f"{self.error} ({self._unfinished(left)})")
            self.done.set()

    def _unfinished(self, left: int) -> str:
        why = "; ".join([*(f"lost {x}" for x in self.pool.lost), *dict.fromkeys(self.unplaced)])
        # The remedy before the reasons: a case's error in the report keeps its first 500 characters.
        return (f"{self.key}: {left} of {self.total} prompts were not generated on the Ray cluster; every answer "
                f"that came back is stored: rerun to generate only the missing ones. Why: "
                f"{why or 'no replica could be placed'}.")

    def _nothing_left(self) -> bool:
        with self._lock:
            return self.stopping or (not self.queue and self.in_flight == 0)

    def _take(self) -> list[Request] | None:
        with self._lock:
            if self.stopping or not self.queue:
                return None
            self.in_flight += 1
            return self.queue.popleft()

    def _give_back(self, chunk: list[Request]) -> None:
        with self._lock:
            self.queue.appendleft(chunk)

    def _slot(self, slot: int) -> None:
        """One replica: start it, feed it chunks, replace it when its node is lost."""
        try:
            self._feed(slot)
        finally:
            self.pool.retire(slot)  # done: its resources back now, even while other replicas still work

    def _feed(self, slot: int) -> None:
        replacements = 0
        replica = None
        while not self._nothing_left():
            if replica is None:
                try:
                    replica = self.pool.start_replica(slot, stop=self._nothing_left)
                except ReplicaLost as e:
                    replacements += 1
                    if not e.placeable or replacements > defaults.RAY_REPLACEMENTS:
                        with self._lock:
                            self.unplaced.append(str(e))
                        return
                    continue
                except EngineError as e:
                    self._fail(e)
                    return
                if replica is None:
                    return
            chunk = self._take()
            if chunk is None:
                return
            try:
                rows = self.engine.store_chunk(chunk)
                self._stored(len(chunk), sum(g.completion_tokens for row in rows for g in row))
            except ReplicaLost:
                self._give_back(chunk)
                replica = None
                replacements += 1
                if replacements > defaults.RAY_REPLACEMENTS:
                    return
            except BaseException as e:  # noqa: BLE001 - the engine failed: stop the job, say why
                self._give_back(chunk)
                self._fail(e if isinstance(e, EngineError) else EngineError(f"{self.key}: {type(e).__name__}: {e}"))
                return
            finally:
                with self._lock:
                    self.in_flight -= 1

    def _stored(self, prompts: int, tokens: int) -> None:
        with self._lock:
            self.stored += prompts
            if self.sink is not None:
                self.sink.advance(prompts, tokens)

    def _fail(self, error: EngineError) -> None:
        with self._lock:
            self.error = self.error or error
            self.stopping = True

    def stop(self) -> None:
        with self._lock:
            self.stopping = True

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def summary(self) -> str:
        if not self.total:
            return f"{self.key}: nothing to generate (stored)"
        nodes = ", ".join(self.pool.nodes_used) or "no node"
        lost = f"; lost {'; '.join(self.pool.lost)}" if self.pool.lost else ""
        state = "failed" if self.error else "done"
        return (f"{self.key}: {self.total} prompts in {self.chunks} chunk(s) on {nodes}, asking "
                f"{_fmt(self.pool.request)} per replica{lost} ({state})")


class ClusterDispatch:
    """Registered as a plugin on the controller (``codeeval-ray``): its hooks end the jobs and
    summarize where each engine ran."""

    def __init__(self, state: Any, cluster: Cluster) -> None:
        self.state = state
        self.cluster = cluster
        self.store: LockedStore | None = None  # its own connection, opened by submit()
        self.keys = list(dict.fromkeys(c.engine_key for c in state.selected))
        self.requests = {k: self.resources(k) for k in self.keys}
        self.jobs: dict[str, EngineJob] = {}

    def resources(self, key: str) -> dict[str, float]:
        tensor_parallel, _ = self.state.parallelism(split_engine_key(key)[0])
        return self.state.scale.resources_for(key) or self.cluster.default_resources(tensor_parallel)

    def check(self) -> None:
        """Every engine fits the cluster: a usage error before anything loads."""
        for key in self.keys:
            self.cluster.check(key, self.requests[key], self.state.parallelism(split_engine_key(key)[0])[1])

    def submit(self) -> "ClusterDispatch":
        """Start every engine's job (the run's store is open), and register the hooks."""
        state = self.state
        assert state.durable is not None, "the run has not started"
        self.store = LockedStore(state.durable.store.another_connection())
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
        for key in self.keys:
            model, preset = split_engine_key(key)
            case = next(c for c in state.selected if c.engine_key == key)
            replicas = state.parallelism(model)[1]
            pool = ClusterEngine(key, state.engine_recipe(model, preset), self.cluster, self.requests[key], env,
                                 replicas)
            engine = DispatchedEngine(self.store, generation_identity(state.options, state.catalog, case),
                                      lambda pool=pool: pool, kind=state.options.engine, engine_key=key,
                                      fresh=state.options.fresh)
            job = EngineJob(key, engine, pool, state.engine_requests(key), state.scale.ray_chunk, replicas)
            self.jobs[key] = job
            job.start()
        state.config.pluginmanager.register(self, "codeeval-ray")
        return self

    def engine(self, key: str) -> DispatchedEngine:
        return self.jobs[key].engine

    def close(self) -> None:
        for job in self.jobs.values():
            job.stop()  # no new chunk is taken
        for job in self.jobs.values():
            job.pool.release()  # a chunk still in flight (an interrupted run) ends with its actor
        for job in self.jobs.values():
            job.join(defaults.RAY_CLOSE_TIMEOUT_S)
        if self.store is not None:
            self.store.close()
        import ray

        if ray.is_initialized():
            ray.shutdown()

    # -- hooks ------------------------------------------------------------------------
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("codeeval ray")
        terminalreporter.write_line(f"cluster {self.cluster.address}: {self.cluster.describe()}")
        for job in self.jobs.values():
            terminalreporter.write_line(job.summary(), red=job.error is not None)

    def pytest_unconfigure(self, config: Any) -> None:
        self.close()


def connect_dispatch(state: Any) -> ClusterDispatch:
    """Reach the cluster and check that it holds every engine (usage errors, before anything is
    written or loads); ``submit()`` then starts the work."""
    dispatch = ClusterDispatch(state, Cluster.connect(state.scale.ray_address))
    try:
        dispatch.check()
    except BaseException:
        dispatch.close()
        raise
    return dispatch


__all__ = ["ClusterDispatch", "DispatchedEngine", "EngineJob", "LockedStore", "missing_requests", "connect_dispatch"]
