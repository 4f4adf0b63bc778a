"""Whether a pytest run uses the suite.

A plugin installed into an environment sees every project's test runs.  As
pytest-xdist stays dormant unless asked (its DSession is registered only in
distribution mode), this one does nothing (no header line, no sandbox probe,
no catalog, no error) unless the run uses the suite:

- one of its options was given (``--models``, ``--preset=...``, ...), or
- ``-m`` names a category, model or dataset of the shipped catalog or of the
  project's ``[tool.codeeval]`` table, or
- a collected test asks for the suite's fixtures (``codeeval_case``): then
  the plugin wakes at collection (plugin.pytest_generate_tests).

The first two are decided here at configure time, reading the project's
table leniently: a half-written ``[tool.codeeval]`` table in a project that
does not run the suite is none of our business.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from .options import given_options

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECTIONS = ("categories", "models", "datasets")


def requested(config: pytest.Config) -> bool:
    """Whether the command line asks for the suite (options or -m names)."""
    if given_options(config):
        return True
    markexpr = (getattr(config.option, "markexpr", "") or "").strip()
    if not markexpr:
        return False
    names = set(_IDENT.findall(markexpr))
    return bool(names & (_shipped_names() | _project_names(config.rootpath / "pyproject.toml")))


def _shipped_names() -> set[str]:
    from .catalog import CATALOG_DIR

    names: set[str] = set()
    for path in CATALOG_DIR.glob("*.toml"):
        names |= _section_names(_read(path))
    return names


def _project_names(pyproject: Path) -> set[str]:
    table = _read(pyproject).get("tool", {}).get("codeeval", {})
    return _section_names(table) if isinstance(table, dict) else set()


def _section_names(data: dict[str, Any]) -> set[str]:
    return {name for section in _SECTIONS if isinstance(data.get(section), dict) for name in data[section]}


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


__all__ = ["requested"]
