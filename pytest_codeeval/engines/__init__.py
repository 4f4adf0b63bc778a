"""Inference engines: the real ones (vLLM offline, OpenAI-compatible server)
and the model-free ones (reference, replay) for fast runs.

Engines are found by name in the registry (registry.ENGINES) and imported
lazily, so collection and dry runs never import vLLM or torch.
"""

from __future__ import annotations

from typing import Any


def engine_class(kind: str) -> Any:
    """The engine class registered under ``kind``."""
    from ..registry import ENGINES

    return ENGINES.get(kind)


__all__ = ["engine_class"]
