"""Reaching the Ray cluster and reading what its nodes offer.

Everything here runs before any model loads, so a cluster that cannot hold a
model is a usage error with the cluster's nodes listed, not a hang.
"""

from __future__ import annotations

import logging
import math
import socket
from dataclasses import dataclass
from typing import Any

from .. import defaults
from ..errors import CodeevalError

# Resources every node has that say nothing about what an engine needs.
_BOOKKEEPING = ("node:", "memory", "object_store_memory", "accelerator_type:")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CodeevalError("--ray-address needs Ray: pip install 'pytest-codeeval[ray]' here and on every node of "
                            "the cluster (the nodes also need pytest-codeeval and the engine's packages).") from None
    return ray


@dataclass(frozen=True)
class Node:
    node_id: str
    name: str  # the node's name (ray start --node-name; its IP by default)
    address: str
    resources: dict[str, float]  # its totals, bookkeeping resources left out

    def offers(self, request: dict[str, float]) -> int:
        """How many replicas asking for ``request`` fit on this node when it is empty."""
        fits = [math.floor(self.resources.get(k, 0.0) / v + 1e-9) for k, v in request.items() if v > 0]
        return min(fits) if fits else 1_000_000


class Cluster:
    """A connected Ray cluster (ray.init done)."""

    def __init__(self, address: str) -> None:
        self.address = address

    @classmethod
    def connect(cls, address: str) -> "Cluster":
        ray = import_ray()
        if not ray.is_initialized():
            _probe(address)
            try:
                ray.init(address=address, namespace="pytest_codeeval", log_to_driver=False,
                         logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
                raise CodeevalError(f"cannot reach the Ray cluster at --ray-address={address} ({e}). Start one "
                                    "(ray start --head) or give the head node's host:port.") from None
        return cls(address)

    # -- nodes ------------------------------------------------------------------
    def _table(self) -> list[dict[str, Any]]:
        import ray

        return list(ray.nodes())

    def nodes(self) -> list[Node]:
        """The live nodes."""
        table = self._table()
        names = [n.get("NodeName") or n.get("NodeManagerAddress", "") for n in table]
        out = []
        for n in table:
            if not n.get("Alive"):
                continue
            name = n.get("NodeName") or n.get("NodeManagerAddress", "")
            out.append(Node(n["NodeID"], _label(name, n["NodeID"], names), n.get("NodeManagerAddress", ""),
                            {k: float(v) for k, v in (n.get("Resources") or {}).items()
                             if not k.startswith(_BOOKKEEPING)}))
        return sorted(out, key=lambda n: (n.name, n.node_id))

    def label(self, node_id: str) -> str:
        """A node's name in reports: its name, with its id where several nodes share the name."""
        table = self._table()
        names = [n.get("NodeName") or n.get("NodeManagerAddress", "") for n in table]
        for n in table:
            if n["NodeID"] == node_id:
                return _label(n.get("NodeName") or n.get("NodeManagerAddress", ""), node_id, names)
        return node_id[:8]

    def has_gpus(self) -> bool:
        return any(n.resources.get("GPU", 0) > 0 for n in self.nodes())

    def default_resources(self, tensor_parallel: int) -> dict[str, float]:
        """A replica's request when --ray-resources does not say: its GPUs, or one CPU on a cluster without any."""
        return {"GPU": float(tensor_parallel)} if self.has_gpus() else {"CPU": 1.0}

    def room(self, request: dict[str, float]) -> int:
        """Replicas asking for ``request`` the live nodes hold, all of them empty."""
        return sum(n.offers(request) for n in self.nodes())

    def describe(self) -> str:
        return "; ".join(f"{n.name} {_fmt(n.resources)}" for n in self.nodes()) or "no live node"

    def check(self, engine_key: str, request: dict[str, float], replicas: int) -> None:
        """A usage error when the cluster cannot hold ``replicas`` replicas of an engine."""
        room = self.room(request)
        if room >= replicas:
            return
        gpu = request.get("GPU", 0)
        span = (f" (an actor runs on one node: a model whose tensor_parallel_size exceeds a node's GPUs would need "
                f"vLLM's multi-node executor, which this suite does not drive)" if gpu and room == 0 else "")
        raise CodeevalError(
            f"{engine_key} needs {replicas} replica(s) of {_fmt(request)} but the Ray cluster at {self.address} has "
            f"room for {room}{span}. Its live nodes: {self.describe()}. Add nodes, lower --data-parallel, or change "
            "what each replica asks for with --ray-resources.")


def _label(name: str, node_id: str, names: list[str]) -> str:
    return name if names.count(name) <= 1 else f"{name}:{node_id[:8]}"


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}"


def _probe(address: str) -> None:
    """host:port must answer before ray.init, which otherwise waits a minute on a wrong address."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise CodeevalError(f"--ray-address={address}: give host:port of the Ray head node (e.g. 10.0.0.5:6379) "
                            "or 'auto' (a cluster started on this machine).")
    try:
        with socket.create_connection((host, int(port)), timeout=defaults.RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise CodeevalError(f"cannot reach the Ray cluster at --ray-address={address} ({e}). Start one "
                            "(ray start --head --port=PORT) or give the head node's host:port.") from None


__all__ = ["Cluster", "Node", "import_ray"]
