"""The transformers engine on the real SmolLM2 (CPU): batched, left-padded
generate with the chat template, n samples, stop strings, token counts; and
the same model through the plugin with --engine hf."""

from __future__ import annotations

import json

import pytest

from helpers import requests_for
from pytest_codeeval.catalog import load_catalog
from pytest_codeeval.engines.base import SamplingConfig
from pytest_codeeval.engines.hf import HFEngine
from pytest_codeeval.items import Prompt


@pytest.fixture(scope="module")
def engine() -> HFEngine:
    catalog = load_catalog()
    model = catalog.model("smollm2_135m_instruct")
    settings = catalog.engine_settings(model, catalog.preset("balanced"))
    e = HFEngine(model, settings, {"seed": 1})
    e.load()
    yield e
    e.close()


def test_chat_and_completion_prompts_with_n_samples_and_stops(engine: HFEngine) -> None:
    chat = [Prompt(f"c{i}", messages=({"role": "user", "content": q},))
            for i, q in enumerate(["What is 2 + 2?", "Name a colour.", "Write a haiku about tea, please."])]
    greedy = engine.generate(requests_for(chat, SamplingConfig(temperature=0.0, max_new_tokens=24, n=2)))
    assert [len(row) for row in greedy] == [2, 2, 2]
    assert all(row[0].text == row[1].text and row[0].text.strip() for row in greedy)  # greedy copies
    assert all(0 < g.completion_tokens <= 24 and g.prompt_tokens > 5 for row in greedy for g in row)
    assert engine.last_call["requests"] == 3 and engine.last_call["completion_tokens"] > 0
    base = Prompt("b", text="def add(a, b):\n    return a + b\n\n\ndef", stop=("\ndef", "\nclass"))
    (row,) = engine.generate(requests_for([base], SamplingConfig(temperature=0.8, top_p=0.9, max_new_tokens=40, n=3)))
    assert len(row) == 3 and all("\ndef" not in g.text for g in row)
    assert engine.stats.device == "cpu" and engine.stats.peak_memory_bytes and engine.stats.load_seconds > 0


def test_the_plugin_runs_a_case_on_the_hf_engine(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("-q", "-p", "no:cacheprovider", "--engine=hf",
                                        "--models=smollm2_135m_instruct", "--datasets=reasoning_sample",
                                        "--samples=2", "--max-new-tokens=48", timeout=600)
    assert result.ret == 0, result.stdout.str()[-3000:]
    (case,) = json.loads((suite.path / "reports" / "comparisons" / "custom_balanced_comparison.json")
                         .read_text())["cases"]
    assert case["engine"]["kind"] == "hf" and case["n_items"] == 2
    assert case["performance"]["tokens_per_s"] > 0 and case["performance"]["completion_tokens"] > 0
