"""The reference engine: answers every item with its reference answer.

It proves each scorer (and the sandbox) reaches 100% without a model, and
makes the whole pipeline testable in seconds.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..items import Generation, Item
from .base import Engine, Request


def reference_answer(item: Item, chat: bool) -> str:
    """What a perfect model would reply.  Code in chat mode comes back the way
    instruct models answer: the whole function in a fenced block."""
    if item.task_type == "code" and chat:
        return f"```python\n{item.prompt}{item.reference}\n```"
    return item.reference


class ReferenceEngine(Engine):
    kind = "reference"
    measures_speed = False

    def __init__(self, model_name: str = "reference", chat: bool = True, devices: Sequence[str] = (),
                 **_: Any) -> None:
        super().__init__(model_name, devices)
        self.chat = chat

    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        out: list[list[Generation]] = []
        for req in requests:
            text = reference_answer(req.item, chat=req.prompt.messages is not None)
            out.append([
                Generation(item_id=req.item.id, sample=j, text=text, completion_tokens=len(text.split()),
                           finish_reason="stop")
                for j in range(req.sampling.n)
            ])
        return out
