"""The suite's errors.

Usage errors (``CodeevalError`` and its subclasses) are raised only before
anything runs: they subclass ``pytest.UsageError``, so pytest prints
``ERROR: <message>`` and exits with code 4 before any model loads.  What goes
wrong once the run has started (an engine that fails to load or dies) is an
``EngineError``: the case it happens in becomes an error with the reason, and
the other cases go on.  Each message names the problem and the fix.
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


class EngineConfigError(CodeevalError):
    """An engine cannot be used as configured, found before anything runs."""


class EngineError(RuntimeError):
    """An engine failed during the run: it could not load, or died mid-call.
    The case becomes an error with this message; later models still run."""
