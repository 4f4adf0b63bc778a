"""Function-calling prompts (BFCL and the shipped function_calling_sample).

Follows BFCL's prompting mode for models without native tool calling
(``bfcl-eval`` 2026.3.23, DEFAULT_SYSTEM_PROMPT_FORMAT =
"ret_fmt=python&tool_call_tag=False&func_doc_fmt=json&prompt_fmt=plaintext&style=classic"):
a system prompt that states the task and the output format
``[func_name1(params_name1=params_value1, ...), func_name2(params)]`` and lists
the functions as indented JSON, each description ending with BFCL's Python
hint; the question goes in the user message.  The system text is BFCL's,
character for character (its missing space after "functions." and its double
space included), so prompts match the leaderboard's.  A model's own system
prompt is appended after it, as BFCL does with a question's system message.

Base models get the same text followed by the question and ``Answer:``, cut
at a blank line or a new question.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..items import Item, Prompt
from . import chat_messages

PYTHON_HINT = " Note that the provided function is in Python 3 syntax."
OUTPUT_FORMAT = "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]"
SYSTEM = (
    "You are an expert in composing functions."
    "You are given a question and a set of possible functions. Based on the question, you will need to make "
    "one or more function/tool calls to achieve the purpose. If none of the functions can be used, point it out. "
    "If the given question lacks the parameters required by the function, also point it out."
    "\n\n"
    "You should only return the function calls in your response.\n\n"
    "If you decide to invoke any of the function(s), you MUST put it in the format of {output_format}.  "
    "You SHOULD NOT include any other text in the response."
    "\n\n"
    "At each turn, you should try your best to complete the tasks requested by the user within the current turn. "
    "Continue to output functions to call until you have fulfilled the user's request to the best of your ability. "
    "Once you have no more functions to call, the system will consider the current turn complete and proceed to "
    "the next turn or task."
    "\n\n"
    "Here is a list of functions in json format that you can invoke.\n{functions}\n"
)
BASE = "{system}\nQuestion: {question}\nAnswer:"
BASE_STOPS = ("\n\n", "\nQuestion:")
TEMPLATES = {
    "system": SYSTEM,
    "output_format": OUTPUT_FORMAT,
    "python_hint": PYTHON_HINT,
    "base": BASE,
    "base_stops": "|".join(BASE_STOPS),
}


def function_docs(functions: list[dict[str, Any]]) -> str:
    """The schemas as BFCL shows them: descriptions with the Python hint, JSON, indent 4."""
    docs = copy.deepcopy(functions)
    for fn in docs:
        fn["description"] = str(fn.get("description", "")) + PYTHON_HINT
    return json.dumps(docs, indent=4)


def system_text(item: Item) -> str:
    return SYSTEM.format(output_format=OUTPUT_FORMAT, functions=function_docs(item.data["functions"]))


def build(item: Item, chat: bool, system_prompt: str) -> Prompt:
    system = system_text(item)
    if chat:
        if system_prompt:
            system = system + "\n\n" + system_prompt
        return Prompt(item_id=item.id, messages=chat_messages(item.prompt, system))
    text = BASE.format(system=system if not system_prompt else system_prompt + "\n\n" + system, question=item.prompt)
    return Prompt(item_id=item.id, text=text, stop=BASE_STOPS)
