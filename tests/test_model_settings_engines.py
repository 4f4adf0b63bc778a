"""Model settings on the real engines (vLLM CPU, SmolLM2): the thinking switch reaching the
chat template, a LoRA adapter served beside its base in one load, a [vllm] argument reaching
vLLM, --sampling model taking the model's generation_config.json, and the same through a
real OpenAI-compatible vLLM server.

The model is a copy of the converted SmolLM2 folder whose chat template implements
enable_thinking the way Qwen3's does (helpers.THINKING_TEMPLATE): with thinking off, the
generation prompt carries an empty think block, so the rendered prompts differ by it.
Each test loads one engine (a minute or two on two cores): they are slow tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

import helpers
from pytest_codeeval.catalog import ModelSpec, load_catalog
from pytest_codeeval.engines.base import Adapter, Request, SamplingConfig
from pytest_codeeval.engines.server import ServerEngine
from pytest_codeeval.engines.vllm_engine import VLLMEngine
from pytest_codeeval.items import Item, Prompt

pytestmark = pytest.mark.slow

CATALOG = load_catalog()
# Sampling defaults in the copy's generation_config.json: what --sampling model must find.
GENERATION_CONFIG = {"temperature": 0.3, "top_p": 0.7, "top_k": 5}
QUESTION = "Write a Python function that returns the square of a number."


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("vllm")
    pytest.importorskip("peft")
    root = tmp_path_factory.mktemp("models")
    think = helpers.thinking_model_dir(root / "smol_think", GENERATION_CONFIG)
    return think, helpers.make_lora_adapter(think, root / "smol_lora")


def _spec(folder: Path, **extra: Any) -> ModelSpec:
    return ModelSpec(name="smol_think", hf_id="HuggingFaceTB/SmolLM2-135M-Instruct", kind="chat", family="SmolLM2",
                     dtype="bfloat16", max_model_len=2048, reasoning=True, thinking_switch=True, source="path",
                     path=str(folder), **extra)


def _request(sampling: SamplingConfig, adapter: Adapter | None = None, item: str = "q/0") -> Request:
    prompt = Prompt(item, messages=({"role": "user", "content": QUESTION},))
    return Request(prompt, Item(id=item, task_type="code", prompt=QUESTION, reference=""), sampling, adapter)


GREEDY_ON = SamplingConfig(mode="greedy", thinking=True, max_new_tokens=24, max_thinking_tokens=8)
GREEDY_OFF = SamplingConfig(mode="greedy", thinking=False, max_new_tokens=24)


def test_vllm_engine_thinking_lora_pass_through_and_model_sampling(model_dirs: tuple[Path, Path]) -> None:
    think, lora = model_dirs
    model = _spec(think, vllm={"max_logprobs": 7})
    adapter = Adapter(name="smol_lora", source=str(lora))
    engine = VLLMEngine(model, CATALOG.engine_settings(model, CATALOG.preset("balanced")),
                        {"seed": 1234, "adapters": [adapter]})
    engine.load()
    try:
        by_model = SamplingConfig(mode="model", temperature=None, top_p=None, thinking=False, max_new_tokens=8)
        out = engine.generate([_request(GREEDY_ON), _request(GREEDY_OFF), _request(GREEDY_OFF, adapter),
                               _request(by_model)])
        on, off, tuned, sampled = (row[0] for row in out)
        # One call: the thinking switch reached the template (the empty think block is in the prompt) ...
        assert off.prompt_tokens > on.prompt_tokens
        # ... the adapter changed what the same prompt gives, in the same load, and neither
        # request of the mixed batch took the other's weights (each alone gives the same) ...
        assert tuned.prompt_tokens == off.prompt_tokens and tuned.text != off.text
        assert engine.generate([_request(GREEDY_OFF, item="q/1")])[0][0].text == off.text
        assert engine.generate([_request(GREEDY_OFF, adapter, item="q/2")])[0][0].text == tuned.text
        assert engine.stats.extra["engine_args"]["enable_lora"] is True
        assert engine.describe()["lora_adapters"] == {"smol_lora": str(lora)}
        # ... the [vllm] table reached vLLM's engine config ...
        assert engine._llm.model_config.max_logprobs == 7
        # ... and --sampling model took the model's generation_config.json.
        assert engine.describe()["generation_config_sampling"] == GENERATION_CONFIG
        assert engine.effective_sampling(by_model).temperature == 0.3 and sampled.completion_tokens > 0
    finally:
        engine.close()


def test_a_base_and_its_adapter_run_as_two_cases_of_one_load(model_dirs: tuple[Path, Path],
                                                             suite: pytest.Pytester) -> None:
    think, lora = model_dirs
    suite.makepyprojecttoml(f"""
        [tool.codeeval.models.smol_think]
        hf_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
        kind = "chat"
        family = "SmolLM2"
        dtype = "bfloat16"
        max_model_len = 2048
        reasoning = true
        thinking_switch = true
        max_thinking_tokens = 16
        source = "path"
        path = "{think}"
        vllm = {{ max_logprobs = 7 }}

        [tool.codeeval.models.smol_lora]
        base = "smol_think"
        adapter = "{lora}"
        """)
    result = suite.runpytest_subprocess("-v", "--setup-show", "--models", "smol_think,smol_lora", "--datasets",
                                        "reasoning_sample", "--samples", "2", "--max-new-tokens", "24",
                                        "--thinking", "off", timeout=1500)
    out = result.stdout.str()
    assert result.ret == 0, out[-5000:]
    assert out.count("SETUP    S codeeval_engine['smol_think@balanced']") == 1
    report = json.loads((suite.path / "reports" / "comparisons" / "custom_balanced_comparison.json").read_text())
    cases = {c["model"]: c for c in report["cases"]}
    assert set(cases) == {"smol_think", "smol_lora"} and all(c["status"] == "passed" for c in cases.values())
    assert all(c["sampling"]["thinking"] is False and c["sampling"]["max_new_tokens"] == 24 for c in cases.values())
    models = report["manifest"]["models"]
    assert models["smol_think"]["thinking"] == "off" and models["smol_think"]["vllm"] == {"max_logprobs": 7}
    assert models["smol_lora"]["base"] == "smol_think" and len(models["smol_lora"]["adapter"]["sha256"]) == 32
    assert len(report["manifest"]["datasets"]["reasoning_sample"]["sha256"]) == 64
    texts = {m: [json.loads(x)["raw_output"] for x in (suite.path / "reports" / "samples" /
                                                        f"{m}__reasoning_sample.jsonl").read_text().splitlines()]
             for m in cases}
    assert texts["smol_think"] != texts["smol_lora"]


@pytest.fixture(scope="module")
def server(model_dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    think, lora = model_dirs
    log = tmp_path_factory.mktemp("server") / "server.log"
    # --max-loras 2 for one adapter: with 1, vLLM CPU 0.32 gave the base request the adapter's
    # answer while both were in flight (README, "LoRA adapters compared like models").
    with helpers.vllm_server(think, "smol_think", log, "--enable-lora", "--max-lora-rank", "8", "--max-loras", "2",
                             "--lora-modules", f"smol_lora={lora}") as url:
        yield url


def test_the_thinking_switch_and_an_adapter_reach_a_real_vllm_server(model_dirs: tuple[Path, Path],
                                                                     server: str) -> None:
    think, lora = model_dirs
    adapter = Adapter(name="smol_lora", source=str(lora))
    engine = ServerEngine(_spec(think), {}, {"base_url": server, "server_model": "smol_think", "timeout_s": 300.0,
                                             "adapters": [adapter]})
    engine.load()
    out = engine.generate([_request(GREEDY_ON), _request(GREEDY_OFF), _request(GREEDY_OFF, adapter)])
    on, off, tuned = (row[0] for row in out)
    assert off.prompt_tokens > on.prompt_tokens  # chat_template_kwargs reached the server's template
    assert tuned.prompt_tokens == off.prompt_tokens and tuned.text != off.text
    # All three were in flight together; each alone gives the same answer.
    assert engine.generate([_request(GREEDY_OFF)])[0][0].text == off.text
    assert engine.generate([_request(GREEDY_OFF, adapter)])[0][0].text == tuned.text
