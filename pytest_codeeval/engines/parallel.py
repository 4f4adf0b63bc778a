"""Data parallel: N replicas of one model on disjoint devices (``--data-parallel N``).

vLLM 0.32 refuses ``LLM(data_parallel_size=N)`` in one process ("not
supported for single-process usage and may hang"; its offline example runs
one process per rank).  Independent replicas need none of its rank
coordination: each replica is an engine of its own whose engine core is
spawned with its own CUDA_VISIBLE_DEVICES, and a call's requests are split
between the replicas and generated at the same time (one thread each: the
threads mostly wait on their engine cores).  This works for any engine kind.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from ..items import Generation
from ..progress import CallProgress, current_sink, reporting
from .base import Engine, Request


def split(requests: Sequence[Request], parts: int) -> list[list[int]]:
    """Request indices for each replica, balanced by work (prompt length plus the tokens it may
    generate): longest first, each to the replica with the least so far."""
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].prompt.render()))
    shards: list[list[int]] = [[] for _ in range(parts)]
    load = [0] * parts
    for i in order:  # longest first, to the least loaded replica
        k = load.index(min(load))
        shards[k].append(i)
        load[k] += len(requests[i].prompt.render()) + requests[i].sampling.max_new_tokens * requests[i].sampling.n
    return [sorted(s) for s in shards]


class DataParallelEngine(Engine):
    def __init__(self, replicas: list[Engine]) -> None:
        super().__init__(replicas[0].model_name)
        self.replicas = replicas
        self.kind = replicas[0].kind
        self.measures_speed = replicas[0].measures_speed

    def load(self) -> None:
        start = time.perf_counter()
        for r in self.replicas:  # one after another: two loads at once compete for the same host
            r.load()
        self.stats.load_seconds = time.perf_counter() - start
        first = self.replicas[0].stats
        self.stats.prepare_seconds = first.prepare_seconds
        self.stats.device = first.device
        self.stats.memory_kind = first.memory_kind
        self.stats.devices = [d for r in self.replicas for d in r.stats.devices]
        self.stats.extra["replicas"] = len(self.replicas)
        self._loaded = True

    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        shards = split(requests, len(self.replicas))
        out: list[list[Generation]] = [[] for _ in requests]
        start = time.perf_counter()
        sink = current_sink()  # the call's progress: each replica reports its share (its thread has no context)
        if sink is not None:
            sink.start(len(requests))

        def replica_generate(replica: Engine, reqs: list[Request]) -> list[list[Generation]]:
            with reporting(sink.part() if isinstance(sink, CallProgress) else None):
                return replica.generate(reqs)

        with ThreadPoolExecutor(max_workers=len(self.replicas), thread_name_prefix="codeeval-dp") as pool:
            futures = [pool.submit(replica_generate, r, [requests[i] for i in shard]) if shard else None
                       for r, shard in zip(self.replicas, shards)]
            for shard, future in zip(shards, futures):
                if future is not None:
                    for i, row in zip(shard, future.result()):
                        out[i] = row
        wall = time.perf_counter() - start
        if sink is not None:
            sink.finish()
        calls = [r.last_call for r, shard in zip(self.replicas, shards) if shard]
        completion = sum(c.get("completion_tokens", 0) for c in calls)
        peaks = [c.get("peak_memory_bytes") for c in calls if c.get("peak_memory_bytes")]
        self.stats.peak_memory_bytes = sum(r.stats.peak_memory_bytes or 0 for r in self.replicas) or None
        self.last_call = {
            "wall_s": wall, "requests": len(requests), "prompt_tokens": sum(c.get("prompt_tokens", 0) for c in calls),
            "completion_tokens": completion, "tokens_per_s": completion / wall if wall > 0 else 0.0,
            # replicas hold their memory at the same time: the call's peak is their sum
            "peak_memory_bytes": sum(peaks) if peaks else None,
            "replica_requests": [len(s) for s in shards],
        }
        return out

    def close(self) -> None:
        for r in self.replicas:
            r.close()
        super().close()

    def describe(self) -> dict[str, Any]:
        return {**self.replicas[0].describe(), "data_parallel": len(self.replicas),
                "replica_devices": [r.stats.devices for r in self.replicas]}


__all__ = ["DataParallelEngine", "split"]
