"""Shared fixtures for the project's own tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_DATASETS = Path(os.environ.get("CODEEVAL_DATA_DIR") or SHARED / "datasets")
SANDBOX_CASES = Path(os.environ.get("CODEEVAL_SANDBOX_CASES") or SHARED / "sandbox-cases")
BENCH_SOURCE = (REPO / "benchmarks" / "test_codeeval.py").read_text()
# pytester points HOME at its own dir; keep the real cache (the converted
# SmolLM2 folder, the sandbox's timing calibration) shared across runs.
CACHE_DIR = os.environ.get("CODEEVAL_CACHE_DIR") or str(Path.home() / ".cache" / "pytest-codeeval")


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester dir holding the suite's benchmark module, as a user's project would."""
    pytester.makepyfile(test_codeeval=BENCH_SOURCE)
    # Keep the hub out of tests: datasets come from the package or ../shared.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("CODEEVAL_DATA_DIR", raising=False)
    monkeypatch.setenv("CODEEVAL_CACHE_DIR", CACHE_DIR)
    return pytester


def shared_datasets() -> Path:
    """The local copies of the public datasets: $CODEEVAL_DATA_DIR or ../shared/datasets."""
    return SHARED_DATASETS


needs_shared = pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets is not present")
