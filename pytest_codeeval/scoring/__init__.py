"""Scorers: one per published scoring method, looked up by the catalog's name.

Imported lazily so a dry run imports none of them.
"""

from __future__ import annotations

import importlib

from ..errors import CatalogError
from .base import ScoreContext, Scorer

# catalog scorer name -> "module:class"
SCORERS: dict[str, str] = {
    "code_exec": "pytest_codeeval.scoring.code:CodeExecScorer",
    "bfcl_ast": "pytest_codeeval.scoring.bfcl:BfclAstScorer",
    "gsm8k": "pytest_codeeval.scoring.gsm8k:Gsm8kScorer",
    "ifeval": "pytest_codeeval.scoring.ifeval:IfevalScorer",
}


def get_scorer(name: str) -> Scorer:
    try:
        target = SCORERS[name]
    except KeyError:
        raise CatalogError(f"unknown scorer {name!r}. Known scorers: {', '.join(SCORERS)}.") from None
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise CatalogError(
            f"scorer {name!r} is not built in this version of pytest-codeeval ({e}). "
            "Pick another dataset with --datasets."
        ) from None
    return cls()


__all__ = ["Scorer", "ScoreContext", "get_scorer", "SCORERS"]
