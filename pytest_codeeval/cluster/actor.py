"""The Ray actor: one engine replica on a cluster node.

It receives the engine's recipe (engines/recipe.py: plain data) and builds
the engine on its node, on the GPUs Ray gave it, exactly as the session
builds a local one.  The node needs pytest-codeeval and the engine's
packages installed; the prompts travel with each call.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any, Sequence

from ..engines.base import Engine, Request
from ..engines.recipe import EngineRecipe
from ..items import Generation


def normal_priority() -> int:
    """Ray starts its workers at nice 15 (RAY_worker_niceness): on a node where anything else runs,
    an engine there got a fraction of the CPU (measured here: 0.81x the local engine's tokens/s
    at load 6).  A replica is its node's main work: back to nice 0 where the process may raise its
    priority (root); otherwise it stays, and the engine's stats say so (start the nodes with
    RAY_worker_niceness=0 instead).  The engine's processes are spawned after this and inherit it."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:  # PermissionError without CAP_SYS_NICE
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


class EngineActor:
    def __init__(self, recipe: EngineRecipe, env: dict[str, str]) -> None:
        # The controller's CODEEVAL_* and HF_* settings (cache dir, offline hub): a node's workers
        # inherit its `ray start` environment, not the controller's.
        os.environ.update(env)
        self.niceness = normal_priority()
        self.recipe = recipe
        self.engine: Engine | None = None

    def where(self) -> dict[str, Any]:
        """Answered as soon as the cluster placed the actor: its node and GPUs."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid(), "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def load(self) -> dict[str, Any]:
        import ray

        engine = self.recipe.build([str(g) for g in ray.get_gpu_ids()])
        engine.load()
        engine.stats.extra["niceness"] = self.niceness
        self.engine = engine
        return {"stats": dataclasses.asdict(engine.stats), "describe": engine.describe()}

    def generate(self, requests: Sequence[Request]) -> tuple[list[list[Generation]], dict[str, Any]]:
        assert self.engine is not None, "load() first"
        rows = self.engine.generate(requests)
        return rows, dict(self.engine.last_call)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


__all__ = ["EngineActor"]
