"""Helpers shared by the project's tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pytest

from pytest_codeeval.engines.base import Request, SamplingConfig
from pytest_codeeval.items import Item, Prompt

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_DATASETS = Path(os.environ.get("CODEEVAL_DATA_DIR") or SHARED / "datasets")
SANDBOX_CASES = SHARED / "sandbox-cases"
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
