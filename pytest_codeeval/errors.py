"""Errors that reach the user as pytest usage errors.

Each message names the problem and the fix.  They subclass
``pytest.UsageError`` so pytest prints ``ERROR: <message>`` and exits with
code 4 before any model is loaded.
"""

from __future__ import annotations

import pytest


class CodeevalError(pytest.UsageError):
    """Base class of the suite's usage errors."""


class CatalogError(CodeevalError):
    """A catalog entry or an option names something unknown or malformed."""


class DatasetError(CodeevalError):
    """A dataset cannot be loaded: missing offline, malformed file, missing field."""


class DatasetUnavailable(DatasetError):
    """A dataset has no local copy and the hub cannot be reached.  Dry runs
    (--collect-only, --setup-plan) report it and go on; real runs stop."""

    def dry_run_line(self, dataset: str) -> str:
        return f"codeeval: dataset {dataset} would fail to load: {self}"


class DatasetNotCached(DatasetUnavailable):
    """Dry runs only: a dataset is on the HuggingFace hub and in no local
    cache.  The dry run does not download it; a real run will."""

    def dry_run_line(self, dataset: str) -> str:
        return f"codeeval: dataset {dataset}: {self}"


class CompletionsError(CodeevalError):
    """A --completions file is malformed or names unknown task ids."""


class EngineError(CodeevalError):
    """An engine cannot be built: missing package, unreachable server, unknown model."""
