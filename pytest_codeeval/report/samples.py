"""Per-sample JSONL logs: one line per scored sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def sample_log_name(result: dict[str, Any], multi_preset: bool) -> str:
    model = f"{result['model']}@{result['preset']}" if multi_preset else result["model"]
    return f"{model}__{result['dataset']}.jsonl"


def write_sample_log(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in result.get("samples", []):
            f.write(json.dumps({"case_id": result["case_id"], **row}, ensure_ascii=False) + "\n")
