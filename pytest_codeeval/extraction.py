"""Answer extraction, in one place: reasoning blocks, code, final answers.

Every function takes the raw model text and returns what a scorer reads.
The raw text and the extracted answer are both recorded per sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


@dataclass(frozen=True)
class SplitAnswer:
    reasoning: str  # the <think> text, "" if none
    answer: str  # what follows the reasoning; "" when the block never closed
    complete: bool  # False: an unclosed <think> block, which counts as no answer


def split_reasoning(text: str) -> SplitAnswer:
    """Split ``<think>...</think>`` off the front of a reply.

    Qwen3 and R1-style models think first.  Some chat templates put the
    opening tag in the prompt, so a reply may hold only ``...</think>answer``.
    A reply that opens a block and never closes it (ran out of tokens while
    thinking) has no answer.
    """
    close = _THINK_CLOSE.search(text)
    open_ = _THINK_OPEN.search(text)
    if close is None:
        if open_ is not None:
            return SplitAnswer(reasoning=text[open_.end():].strip(), answer="", complete=False)
        return SplitAnswer(reasoning="", answer=text, complete=True)
    start = open_.end() if open_ is not None and open_.start() < close.start() else 0
    return SplitAnswer(reasoning=text[start:close.start()].strip(), answer=text[close.end():].lstrip("\n"), complete=True)


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PY_LANGS = {"", "python", "py", "python3", "py3"}


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order; an unclosed last fence counts."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The Python code in a chat reply.

    Prefers the fenced Python block that defines ``entry_point``, then the
    longest Python block, then (no fences at all) the reply from its first
    ``def``/``import``/``class`` line on, as EvalPlus's sanitizer does.
    """
    blocks = [body for lang, body in fenced_blocks(text) if lang in _PY_LANGS]
    if blocks:
        if entry_point:
            pattern = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
            defining = [b for b in blocks if pattern.search(b)]
            if defining:
                return defining[0]
        return max(blocks, key=len)
    match = re.search(r"^(def |class |import |from |async def |@)", text, re.MULTILINE)
    return text[match.start():] if match else text


# lm-evaluation-harness gsm8k.yaml filters, verbatim:
#   strict-match:     regex "#### (\-?[0-9\.\,]+)", take first
#   flexible-extract: regex "(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select -1 (the last match)
GSM8K_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
GSM8K_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def final_answer_strict(text: str) -> str | None:
    m = GSM8K_STRICT.search(text)
    return m.group(1) if m else None


def final_answer_flexible(text: str) -> str | None:
    matches = GSM8K_FLEXIBLE.findall(text)
    if not matches:
        return None
    last = matches[-1]
    return next(g for g in last if g) if isinstance(last, tuple) else last
