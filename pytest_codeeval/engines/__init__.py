"""Inference engines: the real ones (vLLM offline, OpenAI-compatible server)
and the model-free ones (reference, replay) for fast runs.

Engines are imported lazily by name so that collection and dry runs never
import vLLM or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import EngineError
from .base import Engine, SamplingConfig

# engine kind -> "module:factory"; each factory is called as factory(**kwargs).
ENGINE_FACTORIES: dict[str, str] = {
    "reference": "pytest_codeeval.engines.reference:ReferenceEngine",
    "replay": "pytest_codeeval.engines.replay:ReplayEngine",
    "vllm": "pytest_codeeval.engines.vllm_engine:VLLMEngine",
    "server": "pytest_codeeval.engines.server:ServerEngine",
}


def engine_class(kind: str) -> Any:
    try:
        target = ENGINE_FACTORIES[kind]
    except KeyError:
        raise EngineError(f"unknown engine {kind!r}. Use one of: {', '.join(ENGINE_FACTORIES)}.") from None
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise EngineError(
            f"engine {kind!r} is not available: {e}. Install the extra it needs "
            "(pip install 'pytest-codeeval[cpu]' or 'pytest-codeeval[gpu]')."
        ) from e


__all__ = ["Engine", "SamplingConfig", "engine_class", "ENGINE_FACTORIES"]
