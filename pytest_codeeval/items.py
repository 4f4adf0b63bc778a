"""Plain data that flows between the stages: dataset items, generations, verdicts.

Everything here is built from builtin types so that it can cross process
boundaries (pytest-xdist workers, the sandbox, the result store) as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# The kinds of task the suite ships (registry.PROMPTS holds one prompt module
# for each, and packages may add more). A dataset has exactly one; its prompt
# builder is chosen from it.
TaskType = Literal["code", "function_calling", "math", "instruction_following"]


@dataclass(frozen=True)
class Item:
    """One evaluation item of a dataset.

    ``prompt`` is the dataset's own text (HumanEval's function stub, an MBPP
    description, a GSM8K question, an IFEval instruction, a BFCL question).
    ``reference`` is what a perfect model would answer, in the form the scorer
    reads back (code for code tasks, a call string for function calling, a
    number for math, a response for instruction following).  ``data`` holds
    the task-specific fields the scorer needs (tests and entry point, function
    schemas and possible answers, instruction ids and kwargs, ...).
    """

    id: str
    task_type: str
    prompt: str
    reference: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Prompt:
    """What goes to an engine for one item: chat messages or raw text."""

    item_id: str
    # Chat models get ``messages``; base models get ``text``.  Exactly one is set.
    messages: tuple[dict[str, str], ...] | None = None
    text: str | None = None
    stop: tuple[str, ...] = ()

    def render(self) -> str:
        """A stable text form, used for hashing and for the per-sample logs."""
        if self.messages is not None:
            return "\n".join(f"<{m['role']}>\n{m['content']}" for m in self.messages)
        return self.text or ""


@dataclass
class Generation:
    """One sample an engine produced for one item.

    ``key`` is its content key in the result store (set by the caching
    engine) and ``call_id`` the engine call that made it, so scoring can
    find stored verdicts and a case can report the throughput of the calls
    its samples came from, even when they were made in an earlier run."""

    item_id: str
    sample: int
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    key: str = ""
    call_id: str = ""
    seconds: float = 0.0  # its share of the engine call's wall time


@dataclass
class Verdict:
    """A scorer's judgement of one sample.

    ``verdict`` is a short kind ("passed", "failed", "timeout", "no_answer",
    ...). ``scores`` carries the per-sample numbers the scorer aggregates
    (e.g. {"strict": 1.0, "flexible": 1.0} for GSM8K).
    """

    item_id: str
    sample: int
    passed: bool
    verdict: str
    detail: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    extracted: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
