"""ServerEngine: errors, retries and the bounded pool against a local stub, then a real vLLM server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pytest_codeeval.catalog import ModelSpec, load_catalog
from pytest_codeeval.engines import engine_class
from pytest_codeeval.engines.base import SamplingConfig
from pytest_codeeval.engines.server import ServerEngine, normalize_base_url
from pytest_codeeval.errors import EngineError
from pytest_codeeval.items import Prompt
from helpers import free_port, requests_for, running_vllm_server


MODEL = ModelSpec(name="stub_model", hf_id="org/stub-model", kind="chat", family="stub",
                  dtype="bfloat16", max_model_len=2048)


def options(base_url: str | None, **extra: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"base_url": base_url, "server_model": None, "system_prompt": None, "cache_dir": None,
                            "seed": 1234, "concurrency": 8, "timeout_s": 10.0, "backoff_s": 0.01, "retries": 3}
    opts.update(extra)
    return opts


class Stub:
    """A tiny OpenAI-compatible server; ``script(path, body, n_seen)`` returns (status, payload, headers)."""

    def __init__(self, script: Callable[[str, dict[str, Any], int], tuple[int, Any, dict[str, str]]]) -> None:
        self.script = script
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: dict[str, Any]) -> None:
                with stub.lock:
                    stub.requests.append((self.path, body))
                    seen = len(stub.requests)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    status, payload, headers = stub.script(self.path, body, seen)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1
                if status == 0:  # drop the connection without an answer
                    self.close_connection = True
                    return
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(json.loads(self.rfile.read(length) or b"{}"))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Stub":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


MODELS = {"object": "list", "data": [{"id": "org/stub-model", "object": "model"}]}


def completion(body: dict[str, Any], text: str = "ok") -> dict[str, Any]:
    n = body.get("n", 1)
    if "messages" in body:
        choices = [{"index": i, "message": {"role": "assistant", "content": f"{text}{i}"}, "finish_reason": "stop"}
                   for i in range(n)]
    else:
        choices = [{"index": i, "text": f"{text}{i}", "finish_reason": "length"} for i in range(n)]
    return {"choices": choices, "usage": {"prompt_tokens": 7, "completion_tokens": 3 * n}}


def ok_script(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
    if path.endswith("/models"):
        return 200, MODELS, {}
    return 200, completion(body), {}


CHAT = Prompt("t/0", messages=({"role": "user", "content": "hi"},))


def test_engine_class_resolves_server() -> None:
    assert engine_class("server") is ServerEngine


def test_base_url_forms() -> None:
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"


def test_missing_base_url_names_the_option() -> None:
    with pytest.raises(EngineError, match="--base-url"):
        ServerEngine(MODEL, {}, options(None))


def test_unreachable_server_is_a_clear_error() -> None:
    engine = ServerEngine(MODEL, {}, options(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(EngineError, match=r"cannot reach .*127\.0\.0\.1.*Start it"):
        engine.load()
    assert not engine.loaded


def test_unknown_model_lists_what_the_server_serves() -> None:
    with Stub(ok_script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url, server_model="other"))
        with pytest.raises(EngineError, match=r"does not serve model 'other'.*org/stub-model.*--server-model"):
            engine.load()


def test_chat_and_completions_paths_samples_and_stops() -> None:
    with Stub(ok_script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url))
        engine.load()
        assert engine.loaded
        base = Prompt("t/1", text="def f():\n", stop=("\ndef ",))
        out = engine.generate(requests_for([CHAT, base], SamplingConfig(temperature=0.7, n=3, max_new_tokens=16)))
    assert [g.text for g in out[0]] == ["ok0", "ok1", "ok2"]
    assert [g.finish_reason for g in out[1]] == ["length"] * 3
    assert [g.sample for g in out[1]] == [0, 1, 2]
    posts = {path: body for path, body in stub.requests if path != "/v1/models"}
    assert posts["/v1/chat/completions"]["n"] == 3
    assert posts["/v1/chat/completions"]["messages"] == [{"role": "user", "content": "hi"}]
    assert posts["/v1/completions"]["stop"] == ["\ndef "]
    assert posts["/v1/completions"]["prompt"] == "def f():\n"
    assert "seed" not in posts["/v1/completions"]  # kills a vLLM CPU server; opt-in only
    assert engine.last_call["completion_tokens"] == 18 and engine.last_call["prompt_tokens"] == 14
    assert sum(g.completion_tokens for g in out[0]) == 9


def test_greedy_asks_for_one_sample_and_copies_it() -> None:
    with Stub(ok_script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url))
        engine.load()
        out = engine.generate(requests_for([CHAT], SamplingConfig(temperature=0.0, n=4)))
    assert [g.text for g in out[0]] == ["ok0"] * 4
    assert stub.requests[-1][1]["n"] == 1


def test_retries_429_with_backoff_then_succeeds() -> None:
    def script(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/models"):
            return 200, MODELS, {}
        if seen <= 3:  # the two first POSTs (seen 2 and 3) are throttled
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0.2"}
        return 200, completion(body), {}

    with Stub(script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url))
        engine.load()
        start = time.perf_counter()
        out = engine.generate(requests_for([CHAT], SamplingConfig(temperature=0.0)))
        waited = time.perf_counter() - start
    assert out[0][0].text == "ok0"
    assert engine.last_call["attempts"] == 3
    assert waited >= 0.4  # Retry-After was honoured twice


def test_a_dropped_connection_is_retried() -> None:
    def script(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/models"):
            return 200, MODELS, {}
        return (0, None, {}) if seen == 2 else (200, completion(body), {})

    with Stub(script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url))
        engine.load()
        out = engine.generate(requests_for([CHAT], SamplingConfig()))
    assert out[0][0].text == "ok0" and engine.last_call["attempts"] == 2


def test_5xx_until_retries_run_out_is_an_engine_error() -> None:
    def script(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/models"):
            return 200, MODELS, {}
        return 503, {"error": {"message": "overloaded"}}, {}

    with Stub(script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url, retries=2))
        engine.load()
        with pytest.raises(EngineError, match=r"no server replica answers.*HTTP 503: overloaded.*after 3 attempts"):
            engine.generate(requests_for([CHAT], SamplingConfig()))
    assert len(stub.requests) == 1 + 3


def test_a_rejected_prompt_is_an_empty_answer_not_a_failed_run() -> None:
    def script(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/models"):
            return 200, MODELS, {}
        if body["messages"][0]["content"] == "too long":
            return 400, {"error": {"message": "prompt is too long"}}, {}
        return 200, completion(body), {}

    with Stub(script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url))
        engine.load()
        bad = Prompt("t/9", messages=({"role": "user", "content": "too long"},))
        out = engine.generate(requests_for([CHAT, bad], SamplingConfig(n=2, temperature=0.5)))
    assert out[0][0].text == "ok0"
    assert [(g.text, g.finish_reason) for g in out[1]] == [("", "error"), ("", "error")]
    assert "prompt is too long" in engine.last_call["rejected"]["t/9"]
    assert len(stub.requests) == 3  # a 400 is not retried


def test_requests_run_concurrently_but_bounded() -> None:
    def script(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/models"):
            return 200, MODELS, {}
        time.sleep(0.15)
        return 200, completion(body), {}

    prompts = [Prompt(f"t/{i}", messages=({"role": "user", "content": str(i)},)) for i in range(12)]
    with Stub(script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url, concurrency=4))
        engine.load()
        out = engine.generate(requests_for(prompts, SamplingConfig()))
    assert [g[0].item_id for g in out] == [p.item_id for p in prompts]
    assert stub.max_in_flight == 4
    assert engine.last_call["wall_s"] < 12 * 0.15  # not one at a time


# --------------------------------------------------------------------- real server


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_vllm_server(tmp_path_factory.mktemp("server")) as url:
        yield url


@pytest.mark.slow
def test_real_vllm_server(vllm_server: str) -> None:
    catalog = load_catalog()
    model = catalog.model("smollm2_135m_instruct")
    engine = ServerEngine(model, catalog.engine_settings(model, catalog.preset("balanced")),
                          options(vllm_server, server_model="smol", timeout_s=300.0))
    with pytest.raises(EngineError, match="does not serve model 'nope'"):
        ServerEngine(model, {}, options(vllm_server, server_model="nope")).load()
    engine.load()
    chat = [Prompt(f"c/{i}", messages=({"role": "user", "content": q},))
            for i, q in enumerate(["What is 2 + 3? Answer with the number.", "Name a color."])]
    base = Prompt("b/0", text="def add(a, b):\n    return", stop=("\ndef ",))
    out = engine.generate(requests_for([*chat, base], SamplingConfig(temperature=0.8, n=2, max_new_tokens=24)))
    assert [len(g) for g in out] == [2, 2, 2]
    assert all(g.text.strip() for row in out for g in row)
    assert "5" in out[0][0].text + out[0][1].text
    assert all(g.finish_reason in ("stop", "length") for row in out for g in row)
    assert engine.last_call["completion_tokens"] > 0 and engine.last_call["prompt_tokens"] > 0


def test_replicas_share_the_load_and_a_failing_one_hands_its_requests_over() -> None:
    """Three replicas: one is down from the start, one dies after a few requests; the third takes
    over; every prompt is answered and the engine says which replicas served."""
    def dies_after_three(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/models"):
            return 200, MODELS, {}
        time.sleep(0.05)
        return (200, completion(body, "b"), {}) if seen <= 4 else (503, {"error": {"message": "gone"}}, {})

    def slow_ok(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
        time.sleep(0.05)
        return ok_script(path, body, seen)

    down = f"http://127.0.0.1:{free_port()}"
    with Stub(dies_after_three) as b, Stub(slow_ok) as a:
        engine = ServerEngine(MODEL, {}, options(f"{a.url},{b.url},{down}", retries=1, concurrency=4))
        engine.load()  # the down replica is taken out with its reason, the others serve
        prompts = [Prompt(f"t/{i}", messages=({"role": "user", "content": str(i)},)) for i in range(16)]
        out = engine.generate(requests_for(prompts, SamplingConfig()))
    assert all(row[0].text for row in out)
    replicas = engine.describe()["replicas"]
    assert "cannot reach" in replicas[f"{down}/v1"]["failed"]
    assert "HTTP 503" in replicas[f"{b.url}/v1"]["failed"] and replicas[f"{b.url}/v1"]["served"] == 3
    assert replicas[f"{a.url}/v1"]["served"] == 13
    assert max(a.max_in_flight, b.max_in_flight) <= 4


def test_without_a_live_replica_the_load_fails_with_every_reason() -> None:
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    engine = ServerEngine(MODEL, {}, options(",".join(urls)))
    with pytest.raises(EngineError, match=r"no replica serves the model: cannot reach .* \| cannot reach"):
        engine.load()


@pytest.mark.slow
def test_two_real_vllm_servers_as_replicas_and_one_stops(tmp_path: Path) -> None:
    """Two `vllm serve` processes on 127.0.0.1: both serve; then one is stopped and the other
    takes every request; the engine says which served and why one was taken out."""
    catalog = load_catalog()
    model = catalog.model("smollm2_135m_instruct")
    prompts = [Prompt(f"c/{i}", messages=({"role": "user", "content": f"Say the number {i}."},)) for i in range(12)]
    with running_vllm_server(tmp_path / "a") as a, running_vllm_server(tmp_path / "b") as b:
        engine = ServerEngine(model, {}, options(f"{a},{b}", server_model="smol", timeout_s=300.0, retries=1,
                                                 concurrency=4))
        engine.load()
        out = engine.generate(requests_for(prompts, SamplingConfig(max_new_tokens=8)))
        served = {url: r["served"] for url, r in engine.describe()["replicas"].items()}
        assert all(row[0].text.strip() for row in out) and all(n > 0 for n in served.values()), served
    # b stopped (the context exited): a stopped too; start a again alone to see the hand-over
    with running_vllm_server(tmp_path / "c") as c:
        dead = f"http://127.0.0.1:{free_port()}"
        engine = ServerEngine(model, {}, options(f"{dead},{c}", server_model="smol", timeout_s=300.0, retries=1))
        engine.load()
        out = engine.generate(requests_for(prompts[:4], SamplingConfig(max_new_tokens=8)))
        replicas = engine.describe()["replicas"]
        assert all(row[0].text.strip() for row in out)
        assert replicas[f"{c}/v1"]["served"] == 4 and "cannot reach" in replicas[f"{dead}/v1"]["failed"]
