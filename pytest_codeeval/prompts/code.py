"""Code prompts (HumanEval, MBPP, the advanced coding sets).

Instruct models: EvalPlus's instruction prompt, asking for a self-contained
script in a fenced block.  Base models: the dataset prompt itself, continued
by the model, cut at bigcode-evaluation-harness's HumanEval stop sequences.
MBPP items already carry the task text plus its first test as a docstring
(the EvalPlus / bigcode form), built by the MBPP loader.
"""

from __future__ import annotations

from ..items import Item, Prompt
from . import chat_messages

INSTRUCT = (
    "Please provide a self-contained Python script that solves the following problem "
    "in a markdown code block:\n```python\n{prompt}\n```"
)
BASE_STOPS = ("\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\nassert ")
TEMPLATES = {"instruct": INSTRUCT, "base_stops": "|".join(BASE_STOPS), "base": "{prompt}"}


def build(item: Item, chat: bool, system_prompt: str) -> Prompt:
    if chat:
        user = INSTRUCT.format(prompt=item.prompt.strip())
        return Prompt(item_id=item.id, messages=chat_messages(user, system_prompt))
    return Prompt(item_id=item.id, text=item.prompt, stop=BASE_STOPS)
