"""GSM8K: a local ``gsm8k/test.jsonl`` (the upstream file) or the hub
(``openai/gsm8k``, config ``main``, split ``test``).

Also the record builder for the suite's own math sets (reasoning_sample),
which use GSM8K's format: {"question", "answer"} plus an optional "id".
The answer is a worked solution whose last line is ``#### <number>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..catalog import DatasetSpec
from ..errors import DatasetError
from ..items import Item
from .context import LoadContext
from .hub import load_hub_rows
from .jsonl import read_jsonl, require_fields

RECORD_FIELDS = ("question", "answer")

# The number after the last "#### " of a GSM8K answer (what lm-eval's
# "(?s).*#### " normalisation leaves of the target).
_FINAL = re.compile(r"####\s*(.+?)\s*\Z", re.DOTALL)


def target_number(answer: str) -> str | None:
    """The final answer of a worked solution, commas removed ("1,200" -> "1200")."""
    idx = answer.rfind("####")
    if idx == -1:
        return None
    m = _FINAL.search(answer[idx:])
    return m.group(1).replace(",", "") if m else None


def item_from_record(row: dict[str, Any], index: int | None = None, id_prefix: str = "gsm8k") -> Item:
    """An Item from a GSM8K-format record.

    GSM8K itself has no ids, so upstream rows get ``gsm8k/<index>`` (their
    line order, which the hub keeps); the suite's sets carry an "id".
    """
    answer = str(row["answer"])
    target = target_number(answer)
    if row.get("id") is not None:
        item_id = str(row["id"])
    elif index is not None:
        item_id = f"{id_prefix}/{index}"
    else:
        raise DatasetError(
            f"math record {row.get('question', '')[:60]!r} has no \"id\". Add an \"id\" field to each record."
        )
    if target is None:
        raise DatasetError(
            f"math item {item_id}: its answer does not end with a \"#### <number>\" line. "
            "Write the final answer as GSM8K does, on a last line \"#### N\"."
        )
    return Item(
        id=item_id,
        task_type="math",
        prompt=str(row["question"]),
        # The full worked answer: the reference engine replays it, and the
        # scorer normalises it with lm-eval's regexes, as lm-eval does its target.
        reference=answer,
        data={"target": target},
    )


def load(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    local = ctx.local_file(spec)
    if local is not None:
        return items_from_file(local)
    rows = load_hub_rows(spec, ctx)
    return [item_from_record(r, index=i) for i, r in enumerate(rows)]


def items_from_file(path: Path) -> list[Item]:
    rows = read_jsonl(path)
    require_fields(rows, RECORD_FIELDS, path)
    return [item_from_record(r, index=i) for i, r in enumerate(rows)]
