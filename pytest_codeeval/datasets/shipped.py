"""The suite's own sample datasets, shipped in fixtures/datasets/.

Each file uses the native record format of its task type's public dataset
(HumanEval for code, BFCL for function calling, GSM8K for math, IFEval for
instruction following), so the same item builders read both.  A dataset may
be one JSONL file or a folder of them (read in name order).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..catalog import DatasetSpec
from ..errors import CatalogError, DatasetError
from ..items import Item
from .context import LoadContext
from .jsonl import read_jsonl, require_fields

# task type -> module whose item_from_record(row) builds an Item from a native record
RECORD_FORMATS: dict[str, str] = {
    "code": "pytest_codeeval.datasets.humaneval",
    "function_calling": "pytest_codeeval.datasets.bfcl",
    "math": "pytest_codeeval.datasets.gsm8k",
    "instruction_following": "pytest_codeeval.datasets.ifeval",
}


def fixtures_dir() -> Path:
    """fixtures/datasets: inside the wheel (force-included) or the source tree."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_fixtures" / "datasets", here.parent / "fixtures" / "datasets"):
        if candidate.is_dir():
            return candidate
    raise DatasetError(
        "the suite's sample datasets (fixtures/datasets) are missing from this installation. "
        "Reinstall pytest-codeeval."
    )


def dataset_files(spec: DatasetSpec) -> list[Path]:
    path = Path(spec.local_path)
    if not path.is_absolute():
        path = fixtures_dir() / path
    if path.is_dir():
        return sorted(path.glob("*.jsonl"))
    if path.is_file():
        return [path]
    raise DatasetError(f"sample dataset {spec.name!r}: {path} does not exist. Reinstall pytest-codeeval.")


def load(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    try:
        module = importlib.import_module(RECORD_FORMATS[spec.task_type])
    except ImportError as e:
        raise CatalogError(
            f"dataset {spec.name!r}: the {spec.task_type} record format is not built in this version "
            f"of pytest-codeeval ({e}). Pick another dataset with --datasets."
        ) from None
    items: list[Item] = []
    for path in dataset_files(spec):
        rows = read_jsonl(path)
        require_fields(rows, module.RECORD_FIELDS, path)
        items.extend(module.item_from_record(row) for row in rows)
    return items
