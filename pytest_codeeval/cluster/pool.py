"""One model x preset on the cluster: its replicas (Ray actors), seen by the
controller as one Engine.

Each replica is an actor asking for the resources of one engine (by default
its ``tensor_parallel_size`` GPUs); ``--data-parallel N`` gives N actors,
which Ray may place on different nodes.  The dispatcher (dispatch.py) runs
one thread per replica, each bound to its actor: ``generate`` sends the
calling thread's chunk to that thread's actor.  What a call returns carries
where it ran (node, host, devices), which the caching engine stores with the
call, so every case knows its ``performance.node``.

A replica whose node dies, or whose engine dies inside its actor (the
engine's ``EngineDied``, engines/base.py), raises ``ReplicaLost``; the
dispatcher puts its chunk back and asks for a new replica, which Ray places
wherever the request fits.  The actor's engine is supervised on its node as
any engine is (engines/lifecycle.py): when Ray kills the actor, its
supervisor ends the engine's processes.  A request no live node could ever hold fails at once instead of
waiting for a node that will not come.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .. import defaults
from ..engines.base import Engine, EngineDied, EngineStats, Request
from ..engines.recipe import EngineRecipe
from ..errors import EngineError
from ..items import Generation
from .actor import EngineActor
from .connect import Cluster, _fmt


class ReplicaLost(EngineError):
    """A replica's actor (or its node, or its engine) is gone, or no live node can hold a new one."""

    def __init__(self, message: str, placeable: bool = True) -> None:
        super().__init__(message)
        self.placeable = placeable  # False: no live node offers what a replica asks for


class ClusterEngineDied(EngineError, EngineDied):
    """An engine's job ended with prompts left because its replicas were lost: its cases are
    errors marked cut short (interrupt.py), as a local engine that died."""


@dataclass
class Replica:
    slot: int
    actor: Any
    node_id: str = ""
    node: str = ""
    host: str = ""
    devices: list[str] = field(default_factory=list)
    stats: EngineStats = field(default_factory=EngineStats)
    describe: dict[str, Any] = field(default_factory=dict)


def _lost_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors that mean the actor, its worker or its node is gone (not that the engine failed)."""
    import ray.exceptions as rx

    names = ("RayActorError", "ActorUnavailableError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
             "WorkerCrashedError", "LocalRayletDiedError")
    return tuple(getattr(rx, n) for n in names if hasattr(rx, n))


_ACTOR_CLASS: Any = None


def _actor_class() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        import ray

        _ACTOR_CLASS = ray.remote(EngineActor)
    return _ACTOR_CLASS


def actor_options(request: dict[str, float]) -> dict[str, Any]:
    """Ray's actor options for a replica asking for ``request`` (CPU, GPU, memory and custom resources)."""
    custom = {k: v for k, v in request.items() if k not in ("CPU", "GPU", "memory")}
    options: dict[str, Any] = {
        # Explicit: an actor given no num_cpus still needs one CPU to be placed.
        "num_cpus": request.get("CPU", 0.0), "num_gpus": request.get("GPU", 0.0),
        "max_restarts": 0, "max_task_retries": 0,
        # Engines of different models on different nodes where the cluster has room: they do not
        # compete for one host's CPU, memory bandwidth and PCIe.
        "scheduling_strategy": "SPREAD",
    }
    if custom:
        options["resources"] = custom
    if request.get("memory"):
        options["memory"] = request["memory"]
    return options


class ClusterEngine(Engine):
    def __init__(self, engine_key: str, recipe: EngineRecipe, cluster: Cluster, request: dict[str, float],
                 env: dict[str, str], replicas: int = 1) -> None:
        self._local = threading.local()  # the replica bound to the calling thread, and its last call
        super().__init__(engine_key)
        self.engine_key = engine_key
        self.recipe = recipe
        self.kind = recipe.kind
        self.measures_speed = recipe.measures_speed
        self.cluster = cluster
        self.request = dict(request)
        self.env = dict(env)
        self.wanted = replicas  # --data-parallel: replicas the dispatcher runs at most
        self.niceness: set[int] = set()  # of the replicas' processes (actor.normal_priority)
        self.replicas: dict[int, Replica] = {}  # slot -> live replica
        self.nodes_used: list[str] = []  # nodes that generated, in order of first use
        self.lost: list[str] = []  # "node: why" for every replica lost
        self._lock = threading.Lock()
        self._described: dict[str, Any] = {}  # the first replica's own description (engine args, versions)
        self._loaded = True  # the caching engine loads nothing: replicas start in start_replica

    # ``last_call`` per thread: replicas generate at once, and the caching engine reads the
    # figures of the call it just made.
    @property  # type: ignore[override]
    def last_call(self) -> dict[str, Any]:
        return getattr(self._local, "last_call", {})

    @last_call.setter
    def last_call(self, value: dict[str, Any]) -> None:
        self._local.last_call = value

    def load(self) -> None:
        self._loaded = True

    # -- replicas ---------------------------------------------------------------------
    def start_replica(self, slot: int, stop: Callable[[], bool] = lambda: False) -> Replica | None:
        """A new actor for ``slot``, placed by the cluster, its engine loaded, bound to the calling
        thread.  None when ``stop()`` turns true while it waits for room (the work got done)."""
        import ray

        lost = _lost_errors()
        self._check_placeable()
        actor = _actor_class().options(**actor_options(self.request)).remote(self.recipe, self.env)
        where_ref = actor.where.remote()
        looked = time.monotonic()
        node = "?"
        while not ray.wait([where_ref], timeout=defaults.RAY_POLL_S)[0]:
            if stop():
                ray.kill(actor)
                return None
            if time.monotonic() - looked > 10 * defaults.RAY_POLL_S:  # a node may have died meanwhile
                looked = time.monotonic()
                try:
                    self._check_placeable()
                except ReplicaLost:
                    ray.kill(actor)
                    raise
        try:
            where = ray.get(where_ref)
            node = self.cluster.label(where["node_id"])
            info = ray.get(actor.load.remote())
        except lost as e:
            ray.kill(actor)
            self._note_lost(node, e)
            raise ReplicaLost(f"{self.engine_key}: a replica was lost while loading ({_why(e)})") from None
        except ray.exceptions.RayTaskError as e:
            ray.kill(actor)
            raise EngineError(f"{self.engine_key} failed to load on Ray node {node}: {_cause(e)}") from None
        replica = Replica(slot, actor, where["node_id"], node, where["host"], list(where["gpus"]),
                          EngineStats(**info["stats"]), info["describe"])
        with self._lock:
            self.replicas[slot] = replica
            self._described = self._described or dict(info["describe"])
            self.niceness.add(int(replica.stats.extra.get("niceness", 0)))
            self._merge_stats()
        self._local.replica = replica
        return replica

    def _check_placeable(self) -> None:
        if self.cluster.room(self.request) < 1:
            raise ReplicaLost(f"no live node of the Ray cluster offers {_fmt(self.request)} for {self.engine_key} "
                              f"(live nodes: {self.cluster.describe()})", placeable=False)

    def _merge_stats(self) -> None:
        """The engine's figures over its replicas: the slowest load, every device."""
        reps = list(self.replicas.values())
        first = reps[0].stats
        self.stats.load_seconds = max(r.stats.load_seconds for r in reps)
        preps = [r.stats.prepare_seconds for r in reps if r.stats.prepare_seconds is not None]
        self.stats.prepare_seconds = max(preps) if preps else None
        self.stats.device, self.stats.memory_kind = first.device, first.memory_kind
        self.stats.devices = sorted({d for r in reps for d in r.stats.devices})
        self.stats.extra["replicas"] = len(reps)

    def _note_lost(self, node: str, error: BaseException) -> None:
        with self._lock:
            self.lost.append(f"{node}: {_why(error)}")

    # -- generation -------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        import ray

        replica = getattr(self._local, "replica", None)
        if replica is None or replica.slot not in self.replicas:
            # A call outside the dispatcher's replica threads (nothing should be missing by then):
            # a replica of its own.
            replica = self.start_replica(-1 - threading.get_ident() % 1000)
            assert replica is not None
        try:
            rows, call = ray.get(replica.actor.generate.remote(list(requests)))
        except _lost_errors() as e:
            self._drop(replica)
            self._note_lost(replica.node, e)
            raise ReplicaLost(f"{self.engine_key}: Ray node {replica.node} was lost ({_why(e)})") from None
        except ray.exceptions.RayTaskError as e:
            if isinstance(getattr(e, "cause", None), EngineDied):  # the actor lives, its engine does not
                self._drop(replica)
                self._note_lost(replica.node, e.cause)
                raise ReplicaLost(f"{self.engine_key}: the engine died on Ray node {replica.node} "
                                  f"({_cause(e)})") from None
            raise EngineError(f"{self.engine_key} failed on Ray node {replica.node}: {_cause(e)}") from None
        with self._lock:
            if replica.node not in self.nodes_used:
                self.nodes_used.append(replica.node)
        # Where this call ran, stored with it (engines/cached.py): the case's host, node and devices.
        call["conditions"] = {"host": replica.host, "node": replica.node, "devices": replica.stats.devices,
                              "device": replica.stats.device, "memory_kind": replica.stats.memory_kind}
        self.last_call = call
        return rows

    def _drop(self, replica: Replica) -> None:
        import ray

        with self._lock:
            if self.replicas.get(replica.slot) is replica:
                del self.replicas[replica.slot]
        try:
            ray.kill(replica.actor)
        except Exception:  # already gone with its node
            pass

    def retire(self, slot: int) -> None:
        """End one replica (its work is done) and give its resources back."""
        with self._lock:
            replica = self.replicas.pop(slot, None)
        if replica is not None:
            self._end([replica])

    def release(self) -> None:
        """Close every replica's engine and end its actor: the cluster gets its resources back."""
        with self._lock:
            replicas, self.replicas = list(self.replicas.values()), {}
        self._end(replicas)

    def _end(self, replicas: list[Replica]) -> None:
        import ray

        closing = [(r, r.actor.close.remote()) for r in replicas]
        for replica, ref in closing:
            try:
                ray.get(ref, timeout=defaults.RAY_CLOSE_TIMEOUT_S)
            except Exception:  # a dead node or a stuck engine: the kill below ends it
                pass
            try:
                ray.kill(replica.actor)
            except Exception:
                pass

    def close(self) -> None:
        self.release()

    def describe(self) -> dict[str, Any]:
        model, _, preset = self.engine_key.partition("@")
        return {"kind": self.kind, "model": model, "preset": preset, **self._described,
                "ray": {"address": self.cluster.address, "resources": self.request, "replicas": self.wanted,
                        "nodes": list(self.nodes_used), "niceness": max(self.niceness, default=None),
                        **({"lost": list(self.lost)} if self.lost else {})}}


def _why(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


def _cause(error: Any) -> str:
    cause = getattr(error, "cause", None)
    return _why(cause) if cause is not None else _why(error)


__all__ = ["ClusterEngine", "ClusterEngineDied", "ReplicaLost", "Replica", "actor_options"]
