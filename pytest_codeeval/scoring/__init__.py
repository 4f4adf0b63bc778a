"""Scorers: one per published scoring method, found by the catalog's name in
the registry (registry.SCORERS; packages add their own through entry points).

Nothing is imported here eagerly, so a dry run imports no scorer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Scorer


def get_scorer(name: str) -> "Scorer":
    """A fresh scorer for a catalog scorer name (a usage error when unknown)."""
    from ..registry import SCORERS

    return SCORERS.get(name)()


__all__ = ["get_scorer"]
