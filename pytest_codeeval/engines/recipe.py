"""How to build one engine replica, as plain data.

The session builds its engines from a recipe; so does a Ray actor on another
machine (cluster/actor.py), which receives the recipe pickled: it holds the
model's catalog entry, the preset's settings and the run's engine options,
never the session (a pytest config does not travel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..catalog import ModelSpec
from . import engine_class
from .base import Engine


@dataclass(frozen=True)
class EngineRecipe:
    kind: str  # the engine registry name: vllm, server, hf, reference, replay
    model: ModelSpec | None = None  # None for the model-free engines (reference, replay)
    settings: dict[str, Any] = field(default_factory=dict)  # the preset's settings with the model's overrides
    options: dict[str, Any] = field(default_factory=dict)  # the run's engine options (session.engine_options)
    completions: dict[str, list[str]] | None = None  # replay only

    def build(self, devices: Sequence[str]) -> Engine:
        """A new, not yet loaded engine on ``devices``."""
        if self.kind == "reference":
            return engine_class("reference")(model_name="reference", chat=True, devices=list(devices))
        if self.kind == "replay":
            return engine_class("replay")(model_name="replay", completions=self.completions or {},
                                          devices=list(devices))
        assert self.model is not None, f"engine {self.kind} needs a model"
        return engine_class(self.kind)(self.model, self.settings, {**self.options, "devices": list(devices)})

    @property
    def measures_speed(self) -> bool:
        return bool(getattr(engine_class(self.kind), "measures_speed", True))


__all__ = ["EngineRecipe"]
