"""IFEval: a local ``ifeval/input_data.jsonl`` (the google-research release),
else the hub's ``google/IFEval`` (split ``train``, 541 rows).

Also the record format of the shipped ``instruction_following_sample``:
IFEval's ``{"key", "prompt", "instruction_id_list", "kwargs"}`` plus a
``reference_response`` that follows every instruction.  The public set has no
reference responses, so its items carry ``reference = ""`` and
``data["has_reference"] = False``: a ground-truth run must skip them (an empty
response follows no instruction) rather than count them as failures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..catalog import DatasetSpec
from ..errors import DatasetError
from ..items import Item
from .context import LoadContext
from .hub import load_hub_rows
from .jsonl import read_jsonl, require_fields

RECORD_FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")


def item_from_record(row: dict[str, Any]) -> Item:
    """An Item from one IFEval record; raises DatasetError naming the bad instruction."""
    # Imported here: the checkers' module is light, but keep loaders free of scoring imports at import time.
    from ..scoring.ifeval.checkers import InstructionError, clean_kwargs, validate  # noqa: PLC0415

    key = row["key"]
    ids = row["instruction_id_list"]
    kwargs = row["kwargs"]
    if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
        raise DatasetError(
            f"IFEval record {key!r}: instruction_id_list and kwargs must be lists of the same length "
            "(one kwargs object per instruction, {} when it takes none)."
        )
    cleaned = []
    for iid, kw in zip(ids, kwargs):
        if kw is not None and not isinstance(kw, dict):
            raise DatasetError(f"IFEval record {key!r}: kwargs of {iid!r} must be an object, got {kw!r}.")
        try:
            validate(iid, kw)
        except InstructionError as e:
            raise DatasetError(f"IFEval record {key!r}: {e}. Fix the record's instruction_id_list/kwargs.") from None
        cleaned.append(clean_kwargs(kw))
    reference = row.get("reference_response") or ""
    return Item(
        id=str(key),
        task_type="instruction_following",
        prompt=row["prompt"],
        reference=reference,
        data={"key": key, "instruction_id_list": list(ids), "kwargs": cleaned, "has_reference": bool(reference)},
    )


def load(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    local = ctx.local_file(spec)
    if local is not None:
        return load_file(local)
    return [item_from_record(r) for r in load_hub_rows(spec, ctx)]


def load_file(path: Path) -> list[Item]:
    rows = read_jsonl(path)
    require_fields(rows, RECORD_FIELDS, path)
    return [item_from_record(r) for r in rows]
