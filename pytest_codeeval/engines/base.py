"""The engine interface every backend implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from .. import defaults
from ..catalog import SAMPLING_KEYS, ModelSpec
from ..items import Generation, Item, Prompt
from ..progress import reporting


class EngineDied(RuntimeError):
    """The engine's processes died during a call (out of memory, a crash).

    The call's results are lost, and the engine cannot be used again: the
    case errors with this reason and is reported as cut short; the next
    model loads its own engine."""


@dataclass(frozen=True)
class SamplingConfig:
    """How one request is generated (sampling, budget, thinking); part of its generation key.

    A value left ``None`` is not set by the suite: with ``mode == "model"``
    it comes from the model's generation_config.json (vLLM reads it), in the
    other modes it is the engine's neutral default."""

    temperature: float | None = 0.0
    top_p: float | None = 1.0
    max_new_tokens: int = defaults.MAX_NEW_TOKENS  # thinking plus answer
    n: int = 1  # samples per item (pass@k needs n >= k)
    seed: int = defaults.SEED
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    mode: str = ""  # greedy | model | user: how the values were chosen (generation.py)
    thinking: bool | None = None  # the chat template's enable_thinking; None: the model has no switch
    max_thinking_tokens: int = 0  # the share of max_new_tokens meant for thinking

    @property
    def greedy(self) -> bool:
        return self.temperature is not None and self.temperature <= 0

    def set_values(self) -> dict[str, Any]:
        """The sampling values that are set (the catalog's SAMPLING_KEYS), as both
        vLLM's SamplingParams and its OpenAI server take them."""
        return {k: getattr(self, k) for k in SAMPLING_KEYS if getattr(self, k) is not None}

    def chat_template_kwargs(self) -> dict[str, Any]:
        """What the chat template is rendered with (vLLM's ``chat_template_kwargs``)."""
        return {} if self.thinking is None else {"enable_thinking": self.thinking}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter served on its base model's engine (vLLM's ``LoRARequest``)."""

    name: str  # the catalog model it is (the server engine asks for this model name)
    source: str  # a local folder (or a hub id, fetched at load)
    revision: str = ""
    sha256: str = ""  # of the local folder's files: a retrained adapter is a new key

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """One prompt for an engine: the item it asks about and how to sample.

    A call may mix requests of several datasets (each with its own token
    budget), and of a base model and its LoRA adapters (``adapter``): vLLM
    schedules them all at once, which is what makes it fast."""

    prompt: Prompt
    item: Item
    sampling: SamplingConfig
    adapter: Adapter | None = None


@dataclass
class EngineStats:
    """What an engine measured; goes into each case's ``performance`` object."""

    load_seconds: float = 0.0
    prepare_seconds: float | None = None  # one-time preparation before the load (conversion, download)
    peak_memory_bytes: int | None = None
    memory_kind: str | None = None  # "gpu" (NVML) or "cpu_rss" (engine processes); None: not measured
    device: str | None = None
    devices: list[str] = field(default_factory=list)  # the GPUs it runs on, as CUDA_VISIBLE_DEVICES names them
    # Wall-clock [start, end] of load() in this process (preparation, load,
    # warm-up): compiling a preset keeps the devices as busy as generating.
    load_window: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """A loaded model that turns requests into generations.

    ``generate`` receives many requests at once (so batching engines can
    batch them) and returns, per request, ``request.sampling.n`` generations
    in sample order.
    """

    kind: str = "abstract"
    # Whether tokens/s of this engine mean anything: the model-free engines
    # (reference, replay) count words over microseconds, which is no speed.
    measures_speed: bool = True

    def __init__(self, model_name: str, devices: Sequence[str] = ()) -> None:
        self.model_name = model_name
        self.stats = EngineStats(devices=list(devices))
        self._loaded = False
        self.last_call: dict[str, Any] = {}  # figures of the latest generate() call

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Load the model and warm it up (timed into ``stats.load_seconds``; preparation apart)."""
        start, began = time.perf_counter(), time.time()
        self._load()
        self._warm_up()
        self.stats.load_seconds = time.perf_counter() - start - (self.stats.prepare_seconds or 0.0)
        self.stats.load_window = [began, time.time()]
        self._loaded = True

    def _load(self) -> None:  # engines without a model have nothing to load
        pass

    def _warm_up(self) -> None:
        """A short untimed call after loading (engines that compile or capture graphs lazily)."""

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        """One list of ``request.sampling.n`` generations per request, in request order."""

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
        super().__init__(model.name, options.get("devices") or ())
        self.model = model
        self.settings = dict(settings)
        self.options = dict(options)

    # Compiled kernels and CUDA graphs are built on the first calls: one short
    # call at load time puts that cost into load time, where it belongs,
    # instead of into the first case's tokens/s.
    warm_up_on_load = True

    def _warm_up(self) -> None:
        if not self.warm_up_on_load:
            return
        prompt = (Prompt("warm-up", messages=({"role": "user", "content": "Say hi."},)) if self.model.chat
                  else Prompt("warm-up", text="def hello():"))
        item = Item(id="warm-up", task_type="code", prompt="", reference="")
        start = time.perf_counter()
        with reporting(None):  # the warm-up is no part of the call whose progress is shown
            self.generate([Request(prompt, item, SamplingConfig(max_new_tokens=8))])
        self.stats.extra["warm_up_s"] = round(time.perf_counter() - start, 3)
        self.last_call = {}

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


def group_by_sampling(requests: Sequence[Request]) -> dict[SamplingConfig, list[int]]:
    """Request indices per distinct sampling config, in first-seen order."""
    groups: dict[SamplingConfig, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(r.sampling, []).append(i)
    return groups


__all__ = ["SamplingConfig", "Adapter", "Request", "EngineStats", "Engine", "ModelEngine", "group_by_sampling"]
