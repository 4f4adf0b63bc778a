"""Strict and loose evaluation of one response, as in the reference's
``evaluation_main.py`` (``test_instruction_following_strict`` / ``_loose``).

Strict: the response as it is.  Loose: an instruction counts as followed if
any of eight variants follows it: the response; without its first line;
without its last line; without both; and each of those with every "*"
removed (markdown emphasis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .checkers import INSTRUCTIONS, validate


def loose_variants(response: str) -> list[str]:
    """The reference's eight variants, in its order."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]


@dataclass(frozen=True)
class Followed:
    """Per-instruction results for one response, in the item's instruction order."""

    instruction_ids: tuple[str, ...]
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]

    @property
    def prompt_strict(self) -> bool:
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        return all(self.loose)

    def failed(self, loose: bool = False) -> list[str]:
        flags = self.loose if loose else self.strict
        return [iid for iid, ok in zip(self.instruction_ids, flags) if not ok]


def _follows(instruction_id: str, args: Mapping[str, Any], response: str) -> bool:
    return bool(response.strip()) and bool(INSTRUCTIONS[instruction_id].check(response, **args))


def evaluate(instruction_ids: Sequence[str], kwargs: Sequence[Mapping[str, Any] | None], response: str) -> Followed:
    """Strict and loose results of ``response`` for every instruction of one prompt."""
    if len(instruction_ids) != len(kwargs):
        raise ValueError(f"{len(instruction_ids)} instruction ids but {len(kwargs)} kwargs entries")
    variants = loose_variants(response)
    strict: list[bool] = []
    loose: list[bool] = []
    for iid, kw in zip(instruction_ids, kwargs):
        args = validate(iid, kw)
        ok = _follows(iid, args, response)
        strict.append(ok)
        # The strict result is the loose test of the first variant; reuse it.
        loose.append(ok or any(_follows(iid, args, v) for v in variants[1:]))
    return Followed(tuple(instruction_ids), tuple(strict), tuple(loose))
