"""JSON-lines reading with errors that point at the line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterable

from ..errors import DatasetError


def read_jsonl(path: Path, what: str = "dataset") -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
            lines = f.read().splitlines()
    except OSError as e:
        raise DatasetError(f"{what} file {path} cannot be read: {e}.") from None
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(
                f"{what} file {path}, line {n}: not valid JSON ({e.msg}). Each line must be one JSON object (JSONL)."
            ) from None
        if not isinstance(row, dict):
            raise DatasetError(f"{what} file {path}, line {n}: expected a JSON object, got {type(row).__name__}.")
        rows.append(row)
    return rows


def require_fields(rows: Iterable[dict[str, Any]], fields: Iterable[str], path: Path | str, what: str = "dataset") -> None:
    needed = list(fields)
    for n, row in enumerate(rows, 1):
        missing = [f for f in needed if f not in row]
        if missing:
            raise DatasetError(
                f"{what} file {path}, record {n}: missing field(s) {', '.join(missing)}. "
                f"Every record needs: {', '.join(needed)}."
            )
