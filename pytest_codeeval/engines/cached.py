"""The caching engine: resume as a wrapper, as lm-evaluation-harness's
``CachingLM`` wraps a model.

Requests the result store already answers never reach the wrapped engine;
the rest go to it in one call and are stored the moment it returns, with the
call's wall time and tokens (so a later run that reuses them still reports
the throughput measured when they were made).  The model loads only when
something is missing (a rerun or a re-scoring loads none), and it loads
before the timer of that call starts: load time never lands in generation
time.
"""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any, Callable, Sequence

from ..fingerprint import item_sha256
from ..items import Generation
from ..store import CallRecord, ResultStore, StoredGeneration, generation_key, prompt_hash
from .base import Engine, Request


HOST = socket.gethostname()  # where a call ran: speed figures compare only within one machine's conditions


class CachingEngine(Engine):
    def __init__(self, store: ResultStore, identity: dict[str, Any], open_engine: Callable[[], Engine], *,
                 kind: str, engine_key: str, fresh: bool = False) -> None:
        """``identity``: what decides the wrapped engine's output besides the
        prompt and the sampling (identity.generation_identity); ``open_engine``
        builds and loads it; ``fresh`` (--fresh) looks nothing up and replaces
        what is stored."""
        super().__init__(engine_key)
        self.store = store
        self.identity = identity
        self.kind = kind
        self.engine_key = engine_key
        self.fresh = fresh
        self._open = open_engine
        self._inner: Engine | None = None
        self._load_error: BaseException | None = None
        self.calls_made: set[str] = set()  # ids of the engine calls made through this wrapper
        self.last_figures: dict[str, Any] = {}

    # -- the wrapped engine -----------------------------------------------------
    @property
    def inner(self) -> Engine:
        """The loaded engine (loaded on first use, once: a failure is not retried per case)."""
        if self._load_error is not None:
            raise RuntimeError(f"{self.engine_key} failed to load earlier: {self._load_error}") from self._load_error
        if self._inner is None:
            try:
                self._inner = self._open()
            except BaseException as e:
                self._load_error = e
                raise
            self.stats = self._inner.stats
            self._loaded = True
        return self._inner

    @property
    def measures_speed(self) -> bool:  # type: ignore[override]
        return self._inner.measures_speed if self._inner is not None else True

    def load(self) -> None:
        self.inner  # noqa: B018 - loading is the point

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
        self._loaded = False

    def describe(self) -> dict[str, Any]:
        if self._inner is not None:
            return self._inner.describe()
        model, _, preset = self.engine_key.partition("@")
        return {"kind": self.kind, "model": model, "preset": preset, "loaded": False}

    # -- keys ------------------------------------------------------------------------
    def config(self, request: Request) -> dict[str, Any]:
        """What decides a request's output besides its prompt: the engine's identity, the
        request's sampling (thinking and budget included), its item's content and its adapter."""
        cfg = {**self.identity, "sampling": request.sampling.to_dict(), "item_sha256": item_sha256(request.item)}
        if request.adapter is not None:
            cfg["adapter"] = request.adapter.to_dict()
        return cfg

    def keys(self, request: Request, n: int) -> list[str]:
        cfg, ph = self.config(request), prompt_hash(request.prompt)
        return [generation_key(cfg, ph, request.item.id, j) for j in range(n)]

    # -- generation ------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        firsts = [self.keys(r, 1)[0] for r in requests]  # (each key hashes the request's whole config)
        stored = self._lookup(requests, firsts)
        result: list[list[Generation] | None] = []
        missing: list[int] = []
        for i, (req, first) in enumerate(zip(requests, firsts)):
            row_keys = self.keys(req, stored[first].n_samples) if first in stored else [first]
            if all(k in stored for k in row_keys):
                result.append([stored[k].generation for k in row_keys])
            else:
                result.append(None)
                missing.append(i)
        generated = 0
        new_s = 0.0
        if missing:
            rows, new_s = self._generate_and_store([requests[i] for i in missing])
            for i, row in zip(missing, rows):
                result[i] = row
            generated = sum(len(r) for r in rows)
        self.last_figures = {"reused": sum(len(r or ()) for r in result) - generated, "generated": generated,
                             "new_s": new_s}
        return [r or [] for r in result]

    def _lookup(self, requests: Sequence[Request], firsts: Sequence[str]) -> dict[str, StoredGeneration]:
        """``firsts``: each request's first-sample key."""
        if self.fresh and not self.calls_made:
            return {}
        stored = self.store.get_generations(list(firsts))
        # An item whose first sample is stored may have more (replay files, n > 1).
        more = [k for r, first in zip(requests, firsts) for k in self._rest(r, first, stored)]
        if more:
            stored.update(self.store.get_generations(more))
        if self.fresh:  # only what this run made counts
            stored = {k: g for k, g in stored.items() if g.generation.call_id in self.calls_made}
        return stored

    def _rest(self, request: Request, first: str, stored: dict[str, StoredGeneration]) -> list[str]:
        return self.keys(request, stored[first].n_samples)[1:] if first in stored and stored[first].n_samples > 1 else []

    def _generate_and_store(self, requests: list[Request]) -> tuple[list[list[Generation]], float]:
        inner = self.inner  # loads here, before the timer starts
        call_id = uuid.uuid4().hex[:16]
        started = time.time()
        t0 = time.perf_counter()
        rows = inner.generate(requests)
        wall = time.perf_counter() - t0
        if len(rows) != len(requests):
            raise RuntimeError(f"engine returned {len(rows)} result lists for {len(requests)} requests")
        samples = sum(len(r) for r in rows) or 1
        per_sample = wall / samples
        completion = sum(g.completion_tokens for r in rows for g in r)
        prompt = sum(r[0].prompt_tokens for r in rows if r)
        figures = dict(inner.last_call)
        conditions = {"host": HOST, "device": inner.stats.device, "devices": list(inner.stats.devices),
                      "memory_kind": inner.stats.memory_kind,
                      "peak_memory_bytes": figures.get("peak_memory_bytes"),
                      "engine_completion_tokens": figures.get("completion_tokens")}
        # An engine on another machine says where the call ran (cluster/pool.py: host, Ray node, devices).
        conditions.update(figures.pop("conditions", None) or {})
        # Copied greedy samples cost nothing: speed counts what the engine made.
        made = figures.get("completion_tokens", completion)
        self.store.put_call(CallRecord(
            call_id=call_id, model=self.engine_key, engine=self.kind, started_at=started, wall_s=wall,
            requests=len(requests), samples=samples, prompt_tokens=prompt, completion_tokens=completion,
            tokens_per_s=(made / wall if wall > 0 else None) if inner.measures_speed else None,
            conditions=conditions,
        ))
        to_store = []
        for req, row in zip(requests, rows):
            keys, cfg, ph = self.keys(req, len(row)), self.config(req), prompt_hash(req.prompt)
            for key, g in zip(keys, row):
                g.key, g.call_id, g.seconds = key, call_id, per_sample
                to_store.append((self.engine_key, ph, g, len(row), cfg))
        # Keyed by content: --fresh replaces what was stored under the same key.
        self.store.put_generations(to_store)
        self.calls_made.add(call_id)
        return rows, wall


__all__ = ["CachingEngine"]
