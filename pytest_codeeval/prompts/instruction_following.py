"""Instruction-following prompts (IFEval and the shipped sample): the prompt as it is.

lm-eval's ifeval task uses ``doc_to_text: "{{prompt}}"`` with no few-shot
examples and no stop sequences (``until: []``): the response must be free to
contain any text, since instructions constrain its whole shape.  Chat models
get the prompt as the user message; base models get it as raw text.
"""

from __future__ import annotations

from ..items import Item, Prompt
from . import chat_messages

TEMPLATES = {"chat_user": "{prompt}", "base": "{prompt}", "base_stops": ""}


def build(item: Item, chat: bool, system_prompt: str) -> Prompt:
    if chat:
        return Prompt(item_id=item.id, messages=chat_messages(item.prompt, system_prompt))
    return Prompt(item_id=item.id, text=item.prompt, stop=())
