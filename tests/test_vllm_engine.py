"""VLLMEngine: settings from the presets without a model, then the real engine on SmolLM2 (CPU)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any, Iterator

import pytest

from pytest_codeeval.catalog import load_catalog
from pytest_codeeval.engines import engine_class
from pytest_codeeval.engines.base import SamplingConfig
from pytest_codeeval.engines.vllm_engine import VLLMEngine
from pytest_codeeval.errors import EngineError
from pytest_codeeval.items import Prompt
from helpers import requests_for


CATALOG = load_catalog()
SMOL = CATALOG.model("smollm2_135m_instruct")
OPTIONS: dict[str, Any] = {"base_url": None, "server_model": None, "system_prompt": None, "cache_dir": None,
                           "seed": 1234, "concurrency": 8, "timeout_s": 600.0}


def make(preset: str = "balanced", model: Any = SMOL) -> VLLMEngine:
    return VLLMEngine(model, CATALOG.engine_settings(model, CATALOG.preset(preset)), dict(OPTIONS))


def test_importing_the_engine_does_not_import_vllm_or_torch() -> None:
    code = ("import sys, pytest_codeeval.engines.vllm_engine, pytest_codeeval.engines.server; "
            "print(sorted(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_engine_class_resolves_vllm() -> None:
    assert engine_class("vllm") is VLLMEngine


@pytest.mark.parametrize("preset", ["balanced", "performance", "memory_optimized"])
def test_gpu_kwargs_follow_the_preset(preset: str) -> None:
    p = CATALOG.preset(preset)
    kwargs = make(preset).build_engine_kwargs(on_gpu=True)
    assert kwargs["gpu_memory_utilization"] == p.gpu_memory_utilization
    assert kwargs["max_num_seqs"] == p.max_num_seqs
    assert kwargs["enforce_eager"] == p.enforce_eager
    assert kwargs["kv_cache_dtype"] == p.kv_cache_dtype
    assert kwargs["max_model_len"] == (p.max_model_len or SMOL.max_model_len)
    assert kwargs["dtype"] == SMOL.dtype and kwargs["tensor_parallel_size"] == 1
    assert ("max_num_batched_tokens" in kwargs) == bool(p.max_num_batched_tokens)
    assert kwargs["seed"] == 1234


def test_cpu_kwargs_drop_gpu_only_settings() -> None:
    kwargs = make("performance").build_engine_kwargs(on_gpu=False)
    assert kwargs["enforce_eager"] is False  # performance compiles on the CPU too
    assert make("balanced").build_engine_kwargs(on_gpu=False)["enforce_eager"] is True
    for gpu_only in ("gpu_memory_utilization", "kv_cache_dtype", "tensor_parallel_size", "swap_space"):
        assert gpu_only not in kwargs


def test_model_overrides_beat_the_preset() -> None:
    model = dataclasses.replace(SMOL, engine={"max_num_seqs": 7, "max_model_len": 1024})
    kwargs = make("balanced", model).build_engine_kwargs(on_gpu=True)
    assert (kwargs["max_num_seqs"], kwargs["max_model_len"]) == (7, 1024)


def test_path_source_without_a_model_folder_fails_before_vllm(tmp_path: Any) -> None:
    model = dataclasses.replace(SMOL, source="path", path=str(tmp_path / "nothing"))
    engine = make(model=model)
    with pytest.raises(EngineError, match=r"not a model folder .*config.json"):
        engine.load()
    assert not engine.loaded


def test_generate_before_load_is_an_error() -> None:
    with pytest.raises(EngineError, match="not loaded"):
        make().generate(requests_for([Prompt("x", text="hi")], SamplingConfig()))


# --------------------------------------------------------------------- the real engine


@pytest.fixture(scope="module")
def engine() -> Iterator[VLLMEngine]:
    pytest.importorskip("vllm")
    eng = make("balanced")
    eng.load()
    try:
        yield eng
    finally:
        eng.close()


HUMANEVAL_LIKE = (
    'def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n'
)


@pytest.mark.slow
def test_real_engine_loads_generates_and_shuts_down(engine: VLLMEngine) -> None:
    import psutil

    # --- load: timed, measured, engine processes exist
    assert engine.loaded
    assert engine.stats.load_seconds > 0
    assert engine.stats.memory_kind == "cpu_rss" and engine.stats.device == "cpu"
    assert engine.stats.peak_memory_bytes > 300 * 2**20  # weights alone are 260 MB
    assert engine.stats.extra["engine_args"]["enforce_eager"] is True
    pids = set(engine._engine_pids)
    assert pids and all(psutil.pid_exists(p) for p in pids)

    # --- chat prompts, greedy, several samples: one batched call, copies of the one greedy answer
    chat = [
        Prompt("c/0", messages=({"role": "user", "content": "Complete this function:\n" + HUMANEVAL_LIKE},)),
        Prompt("c/1", messages=({"role": "user", "content": "What is 2+3?"},)),
    ]
    out = engine.generate(requests_for(chat, SamplingConfig(temperature=0.0, max_new_tokens=48, n=2)))
    assert [[g.sample for g in row] for row in out] == [[0, 1], [0, 1]]
    assert out[0][0].text == out[0][1].text and "return" in out[0][0].text
    assert "5" in out[1][0].text
    assert all(g.prompt_tokens > 20 and 0 < g.completion_tokens <= 48 for row in out for g in row)
    call = engine.last_call
    assert call["requests"] == 2 and call["greedy_copies"] is True
    assert call["completion_tokens"] == out[0][0].completion_tokens + out[1][0].completion_tokens
    assert call["wall_s"] > 0 and call["tokens_per_s"] > 0

    # --- raw text with stop sequences, sampling with n=3 (engine-wide seed: the CPU engine survives),
    #     and a prompt over max_model_len that would otherwise fail the whole batch
    base = Prompt("b/0", text=HUMANEVAL_LIKE, stop=("\ndef ", "\nclass "))
    huge = Prompt("b/1", text="word " * (SMOL.max_model_len + 100), stop=("\ndef ",))
    out = engine.generate(requests_for([base, huge], SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=32, n=3)))
    assert len(out[0]) == 3 and all("\ndef " not in g.text for g in out[0])
    assert all(g.finish_reason in ("stop", "length") for g in out[0])
    assert [g.finish_reason for g in out[1]] == ["prompt_too_long"] * 3
    assert engine.last_call["prompts_too_long"] == 1 and engine.last_call["seed_scope"] == "engine"

    # --- close: the engine core and its worker are gone
    engine.close()
    assert not engine.loaded
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert engine.stats.extra["engine_processes_killed"] == []
    engine.close()  # idempotent: the fixture's own close is harmless
