"""An engine for a running OpenAI-compatible server (``vllm serve``, or any other).

This is how users reach models served on other machines: ``--base-url`` and
``--server-model`` name the server and the model it serves. All requests of a
dataset are in flight at once through a bounded thread pool (the server
batches them, as vLLM's offline engine would), each with a timeout and with
retries and exponential backoff on 429, 5xx and connection errors.

Only the standard library is used (urllib + ThreadPoolExecutor): the engine
works without vLLM or any HTTP client installed.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from .. import defaults
from ..catalog import ModelSpec
from ..errors import EngineError
from ..generation import with_thinking_opened
from ..items import Generation, Prompt
from ..progress import current_sink
from .base import ModelEngine, Request, SamplingConfig
from .replicas import Replicas

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_CONCURRENCY = defaults.SERVER_CONCURRENCY
DEFAULT_TIMEOUT_S = defaults.SERVER_TIMEOUT_S
DEFAULT_RETRIES = defaults.SERVER_RETRIES
DEFAULT_BACKOFF_S = defaults.SERVER_BACKOFF_S
MAX_BACKOFF_S = defaults.SERVER_MAX_BACKOFF_S


class ServerUnavailable(Exception):
    """A request that still failed with a retryable error after every retry."""


class RequestRejected(Exception):
    """The server answered a request with a non-retryable error (4xx)."""


@dataclass
class _Reply:
    texts: list[str]
    finish_reasons: list[str | None]
    prompt_tokens: int
    completion_tokens: int
    attempts: int


def server_urls(option: str | None, model: ModelSpec) -> list[str]:
    """The replicas of a model: --base-url (comma-separated), else the catalog's base_urls."""
    raw = [u for u in (option or "").split(",") if u.strip()] or list(model.base_urls)
    return list(dict.fromkeys(normalize_base_url(u) for u in raw))


def normalize_base_url(url: str) -> str:
    """``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/v1`` all mean the /v1 API root."""
    url = url.strip().rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class ServerEngine(ModelEngine):
    kind = "server"
    warm_up_on_load = False  # the server warmed itself up when it started

    def __init__(self, model: ModelSpec, settings: dict[str, Any], options: dict[str, Any]) -> None:
        super().__init__(model, settings, options)
        urls = server_urls(options.get("base_url"), model)
        if not urls:
            raise EngineError(
                f"the server engine needs the server's address for model {model.name!r}. "
                "Give --base-url=http://HOST:PORT (several, comma-separated, for replicas; or base_urls in the "
                "model's catalog entry), and --server-model=NAME if it serves the model under another name."
            )
        self.replicas = Replicas.of(urls)
        self.base_url = urls[0]
        # vllm serve names a model by the id it was started with unless --served-model-name says otherwise.
        self.server_model = str(options.get("server_model") or model.hf_id)
        self.concurrency = max(1, int(options.get("concurrency") or DEFAULT_CONCURRENCY))
        self.timeout_s = float(options.get("timeout_s") or DEFAULT_TIMEOUT_S)
        self.retries = int(options.get("retries", DEFAULT_RETRIES))
        self.backoff_s = float(options.get("backoff_s", DEFAULT_BACKOFF_S))
        # Off by default: a per-request seed with sampling kills a vLLM *CPU* server
        # ("CPU Generator does not use offset"); a GPU server takes it, so users can turn it on.
        self.request_seed = bool(options.get("server_request_seed", False))
        self.api_key = options.get("api_key") or os.environ.get("CODEEVAL_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.served_models: list[str] = []
        self.stats.memory_kind = "remote"
        self.stats.device = "server " + ", ".join(urls)

    # ----------------------------------------------------------------- HTTP
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _request(self, url: str, method: str, path: str, body: dict[str, Any] | None,
                 timeout_s: float) -> tuple[int, Any]:
        """One HTTP exchange; returns (status, parsed JSON or text). Raises OSError on transport errors."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url + path, data=data, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read().decode(errors="replace")
            try:
                payload: Any = json.loads(raw)
            except ValueError:
                payload = raw
            e.payload = payload  # type: ignore[attr-defined]
            raise

    def _call(self, path: str, body: dict[str, Any]) -> tuple[Any, int]:
        """POST to the least busy live replica; a replica that stays unavailable
        is taken out and the request goes to another. Returns (JSON, attempts)."""
        attempts = 0
        while True:
            replica = self.replicas.acquire()
            if replica is None:
                raise ServerUnavailable("; ".join(f"{r.url}: {r.failed}" for r in self.replicas.replicas))
            try:
                payload, n = self._call_with_retries(replica.url, path, body)
            except ServerUnavailable as e:
                self.replicas.release(replica, served=False)
                self.replicas.fail(replica, str(e))
                attempts += self.retries + 1
                continue
            except BaseException:
                self.replicas.release(replica, served=False)
                raise
            self.replicas.release(replica, served=True)
            return payload, attempts + n

    def _call_with_retries(self, url: str, path: str, body: dict[str, Any]) -> tuple[Any, int]:
        """POST with retries and exponential backoff (honours Retry-After); returns (JSON, attempts)."""
        last_error = ""
        for attempt in range(self.retries + 1):
            retry_after: float | None = None
            try:
                _, payload = self._request(url, "POST", path, body, self.timeout_s)
                return payload, attempt + 1
            except urllib.error.HTTPError as e:
                detail = _error_text(getattr(e, "payload", ""))
                if e.code not in RETRY_STATUS:
                    raise RequestRejected(f"HTTP {e.code}: {detail}") from None
                last_error = f"HTTP {e.code}: {detail}"
                retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout,
                    TimeoutError) as e:  # refused, reset, cut short, timed out: worth another try
                last_error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt == self.retries:
                break
            delay = min(MAX_BACKOFF_S, self.backoff_s * 2**attempt) * random.uniform(0.8, 1.2)
            time.sleep(max(delay, retry_after or 0.0))
        raise ServerUnavailable(f"{last_error} (after {self.retries + 1} attempts)")

    # ----------------------------------------------------------------- load
    def _load(self) -> None:
        """Check each replica is there and serves the model (GET /v1/models); one that
        is not is taken out, with the reason, as long as another one serves."""
        problems: list[str] = []
        for replica in self.replicas.replicas:
            why = self._check_replica(replica.url)
            if why:
                self.replicas.fail(replica, why)
                problems.append(why)
        if not self.replicas.live():
            raise EngineError(problems[0] if len(problems) == 1 else
                              "no replica serves the model: " + " | ".join(problems))
        missing = [a.name for a in self.options.get("adapters") or () if a.name not in self.served_models]
        if missing:
            raise EngineError(
                f"the server at {self.base_url} does not serve the LoRA adapter(s) {', '.join(missing)}; it serves: "
                f"{', '.join(self.served_models)}. Start it with --enable-lora --lora-modules "
                + " ".join(f"{m}=PATH" for m in missing) + "."
            )

    def _check_replica(self, url: str) -> str:
        """Why this replica cannot serve the model ("" when it can)."""
        try:
            _, payload = self._request(url, "GET", "/models", None,
                                       timeout_s=min(self.timeout_s, defaults.SERVER_MODELS_TIMEOUT_S))
        except urllib.error.HTTPError as e:
            return (f"the server at {url} answered GET /models with HTTP {e.code}: "
                    f"{_error_text(getattr(e, 'payload', ''))}. Check --base-url (it must be the OpenAI-compatible "
                    "API root) and the API key ($CODEEVAL_API_KEY or $OPENAI_API_KEY).")
        except (urllib.error.URLError, OSError) as e:
            return (f"cannot reach an OpenAI-compatible server at {url} ({getattr(e, 'reason', e)}). "
                    "Start it (e.g. `vllm serve MODEL --port 8000`) or fix --base-url.")
        try:
            served = [str(m["id"]) for m in payload["data"]]
        except (TypeError, KeyError):
            return (f"{url}/models did not return an OpenAI model list (got {str(payload)[:200]!r}). "
                    "Check that --base-url points at an OpenAI-compatible API.")
        self.served_models = sorted(set(self.served_models) | set(served))
        if self.server_model not in served:
            return (f"the server at {url} does not serve model {self.server_model!r}; it serves: "
                    f"{', '.join(served) or 'nothing'}. Give --server-model with one of those names.")
        return ""

    # ------------------------------------------------------------- generate
    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        sink = current_sink()

        def one(req: Request) -> _Reply | str:
            path, body = self._body(req.prompt, req.sampling)
            if req.adapter is not None:  # a LoRA adapter is served under its own name (--lora-modules NAME=PATH)
                body["model"] = req.adapter.name
            try:
                payload, attempts = self._call(path, body)
            except RequestRejected as e:  # this prompt only (e.g. too long): an empty answer, recorded
                if sink is not None:
                    sink.advance(1)
                return str(e)
            reply = _parse(payload, chat=req.prompt.messages is not None, attempts=attempts)
            if req.prompt.messages is not None:  # a template may open the think block in the prompt
                reply.texts = [with_thinking_opened(t, req.sampling) for t in reply.texts]
            if sink is not None:  # progress from the completed requests (pool threads report)
                sink.advance(1, reply.completion_tokens)
            return reply

        if sink is not None:
            sink.start(len(requests))
        start = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(requests))),
                                  thread_name_prefix="codeeval-server")
        try:
            replies = list(pool.map(one, requests))
        except ServerUnavailable as e:
            # The server is gone for good: stop queued requests and fail the case with the reason.
            pool.shutdown(wait=False, cancel_futures=True)
            raise EngineError(
                f"no server replica answers for model {self.server_model!r} any more: {e}. "
                "Check that the servers are still running (their logs say why)."
            ) from None
        finally:
            if sink is not None:
                sink.finish()
        pool.shutdown(wait=True)
        wall = time.perf_counter() - start

        results: list[list[Generation]] = []
        prompt_tokens = completion_tokens = attempts = 0
        rejected: dict[str, str] = {}
        for req, reply in zip(requests, replies):
            n = max(1, int(req.sampling.n))
            greedy = req.sampling.greedy
            item_id = req.prompt.item_id
            if isinstance(reply, str):
                rejected[item_id] = reply
                results.append([Generation(item_id, j, "", 0, 0, "error") for j in range(n)])
                continue
            prompt_tokens += reply.prompt_tokens
            completion_tokens += reply.completion_tokens
            attempts += reply.attempts
            texts, reasons = reply.texts, reply.finish_reasons
            if greedy:
                texts, reasons = texts[:1] * n, reasons[:1] * n
            # The API reports completion tokens per request; split them over its choices.
            per_choice = _split(reply.completion_tokens, len(reply.texts))
            per_choice = per_choice[:1] * n if greedy else per_choice
            if len(texts) != n:
                raise EngineError(
                    f"the server returned {len(texts)} choices for {item_id} where {n} were asked for. "
                    "Use a server that supports the OpenAI `n` parameter, or --n-samples 1."
                )
            results.append([Generation(item_id, j, texts[j], reply.prompt_tokens, per_choice[j], reasons[j])
                            for j in range(n)])
        n_max = max((r.sampling.n for r in requests), default=1)
        self.last_call = self.call_figures(wall, len(requests), n_max, any(r.sampling.greedy for r in requests),
                                           prompt_tokens, completion_tokens, attempts=attempts, rejected=rejected,
                                           concurrency=self.concurrency, replicas=self.replicas.summary())
        return results

    def _body(self, prompt: Prompt, sampling: SamplingConfig) -> tuple[str, dict[str, Any]]:
        # vLLM rejects n > 1 with greedy decoding; greedy samples are identical anyway.
        # A value the suite leaves unset (None: --sampling model without a pinned value)
        # is left out, so the server applies the model's generation_config.json.
        greedy = sampling.greedy
        body: dict[str, Any] = {
            "model": self.server_model,
            "max_tokens": int(sampling.max_new_tokens),
            "n": 1 if greedy else max(1, int(sampling.n)),
        }
        # top_k, min_p and repetition_penalty are vLLM's extensions of the OpenAI API.
        body.update(sampling.set_values())
        if greedy:
            body["top_p"] = 1.0
        if prompt.stop:
            body["stop"] = list(prompt.stop)
        if self.request_seed and not greedy:
            body["seed"] = int(sampling.seed)
        if prompt.messages is not None:
            body["messages"] = [dict(m) for m in prompt.messages]
            if sampling.chat_template_kwargs():  # vLLM's server renders the template with them (enable_thinking)
                body["chat_template_kwargs"] = sampling.chat_template_kwargs()
            return "/chat/completions", body
        body["prompt"] = prompt.text or ""
        return "/completions", body

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url, "server_model": self.server_model,
                "concurrency": self.concurrency, "replicas": self.replicas.summary()}


def _parse(payload: Any, chat: bool, attempts: int) -> _Reply:
    try:
        choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        texts: list[str] = []
        for c in choices:
            if chat:
                message = c.get("message") or {}
                text = message.get("content") or ""
                # A server with a reasoning parser splits the thinking off; put it back
                # in the <think> form the suite splits, so it is recorded, not lost.
                reasoning = message.get("reasoning_content") or message.get("reasoning")
                if reasoning:
                    # Cut off by the token limit with no answer yet: the block never closed.
                    unclosed = not text and c.get("finish_reason") == "length"
                    text = f"<think>{reasoning}" + ("" if unclosed else f"</think>{text}")
            else:
                text = c.get("text") or ""
            texts.append(text)
        usage = payload.get("usage") or {}
        return _Reply(texts, [c.get("finish_reason") for c in choices],
                      int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), attempts)
    except (TypeError, KeyError, AttributeError):
        raise EngineError(
            f"the server's reply is not an OpenAI completion: {str(payload)[:300]!r}. "
            "Check that --base-url points at an OpenAI-compatible API."
        ) from None


def _split(total: int, parts: int) -> list[int]:
    if parts <= 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_BACKOFF_S, float(value)) if value else None
    except ValueError:  # an HTTP date: not worth parsing, fall back to our own backoff
        return None


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        err = payload.get("error", payload)
        if isinstance(err, dict):
            return str(err.get("message") or err)[:300]
        return str(err)[:300]
    return str(payload)[:300]
