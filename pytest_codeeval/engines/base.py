"""The engine interface every backend implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ..catalog import ModelSpec
from ..items import Generation, Item, Prompt


class EngineDied(RuntimeError):
    """The engine's processes died during a call (out of memory, a crash).

    The call's results are lost, and the engine cannot be used again: the
    case errors with this reason and is reported as cut short; the next
    model loads its own engine."""


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling parameters of one run; part of the generation cache key."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    n: int = 1  # samples per item (pass@k needs n >= k)
    seed: int = 1234

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EngineStats:
    """What an engine measured; goes into each case's ``performance`` object."""

    load_seconds: float = 0.0
    peak_memory_bytes: int = 0
    memory_kind: str = ""  # "gpu" (NVML/torch) or "cpu_rss" (engine processes)
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """A loaded model that turns prompts into generations.

    ``generate`` receives every prompt of a dataset at once (so batching
    engines can batch them) and returns, per prompt, ``sampling.n``
    generations in sample order.
    """

    kind: str = "abstract"

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.stats = EngineStats()
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Load the model (timed into ``stats.load_seconds``)."""
        start = time.perf_counter()
        self._load()
        self.stats.load_seconds = time.perf_counter() - start
        self._loaded = True

    def _load(self) -> None:  # engines without a model have nothing to load
        pass

    @abstractmethod
    def generate(
        self, prompts: Sequence[Prompt], items: Sequence[Item], sampling: SamplingConfig
    ) -> list[list[Generation]]:
        """One list of ``sampling.n`` generations per prompt, in prompt order."""

    def close(self) -> None:
        """Free the model for real (engine processes gone, memory back)."""
        self._loaded = False

    def describe(self) -> dict[str, Any]:
        """Plain data for the report's manifest."""
        return {"kind": self.kind, "model": self.model_name}


class ModelEngine(Engine):
    """An engine for a catalog model: built from its entry, the preset's
    settings (with the model's overrides) and the run's engine options."""

    def __init__(self, model: ModelSpec, settings: dict[str, Any], options: dict[str, Any]) -> None:
        super().__init__(model.name)
        self.model = model
        self.settings = dict(settings)
        self.options = dict(options)
        self.last_call: dict[str, Any] = {}  # figures of the latest generate() call

    @staticmethod
    def call_figures(wall: float, requests: int, n: int, greedy: bool, prompt_tokens: int,
                     completion_tokens: int, **extra: Any) -> dict[str, Any]:
        """``last_call``'s figures that every engine reports, plus its own (``extra``)."""
        return {
            "wall_s": wall,
            "requests": requests,
            "samples": n,
            "greedy_copies": greedy and n > 1,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "tokens_per_s": completion_tokens / wall if wall > 0 else 0.0,
            **extra,
        }
