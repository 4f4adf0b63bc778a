"""Prompt templates per task type and model kind.

One module per task type (registry.PROMPTS; packages add task types through
entry points), each exposing

    TEMPLATES: dict[str, str]          # every template text it uses (hashed into the manifest)
    build(item, chat, system_prompt) -> Prompt

Chat models get messages (a system prompt when one is configured); base
models get raw text plus stop sequences.
"""

from __future__ import annotations

import hashlib
from types import ModuleType

from ..catalog import DatasetSpec, ModelSpec
from ..items import Item, Prompt

def _module(task_type: str) -> ModuleType:
    from ..registry import PROMPTS  # one module per task type (registry.PROMPTS)

    return PROMPTS.get(task_type)


def build_prompt(item: Item, dataset: DatasetSpec, model: ModelSpec, system_prompt: str | None = None) -> Prompt:
    system = model.system_prompt if system_prompt is None else system_prompt
    return _module(dataset.task_type).build(item, chat=model.chat, system_prompt=system)


def template_hash(task_type: str) -> str:
    """sha256 of the task type's templates, for the report's manifest."""
    templates = _module(task_type).TEMPLATES
    blob = "\n\x00".join(f"{k}\n{templates[k]}" for k in sorted(templates))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def chat_messages(user: str, system_prompt: str) -> tuple[dict[str, str], ...]:
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": user})
    return tuple(messages)
