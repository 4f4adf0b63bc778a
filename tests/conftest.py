"""Fixtures shared by the project's tests (helpers live in helpers.py)."""

from __future__ import annotations

import pytest

from helpers import BENCH_SOURCE, CACHE_DIR


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
