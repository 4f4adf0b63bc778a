"""Per-model performance files: load time, throughput, memory and wall
time of each of the model's cases, with the hardware they ran on.  A figure
no case measured is null (the model-free engines measure no speed, memory
or load), never 0."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .fmt import timed_alone
from .ranking import model_label

PERF_FIELDS = ("prepare_s", "load_s", "tokens_per_s", "completion_tokens", "prompt_tokens", "generation_s", "scoring_s",
               "peak_memory_bytes", "memory_kind", "device", "devices", "host", "node", "overlapped_with",
               "generations_reused", "generated")


def performance_by_model(comparison: dict[str, Any]) -> dict[str, dict[str, Any]]:
    multi = len(comparison["presets"]) > 1
    out: dict[str, dict[str, Any]] = {}
    for c in comparison["cases"]:
        m = model_label(c, multi)
        entry = out.setdefault(m, {
            "schema_version": comparison["schema_version"], "run_id": comparison["run_id"], "model": m,
            "engine": comparison["engine"], "hardware": comparison["manifest"].get("hardware", {}), "cases": [],
        })
        p = c.get("performance") or {}
        entry["cases"].append({
            "case_id": c["case_id"], "dataset": c["dataset"], "preset": c["preset"], "status": c["status"],
            "n_items": c.get("n_items"), "wall_s": c.get("wall_s"), **{k: p.get(k) for k in PERF_FIELDS if k in p},
        })
    for entry in out.values():
        cs = entry["cases"]
        # totals over what was timed alone on its devices (overlap.py): a shared device's figure compares with nothing
        timed = [c for c in cs if timed_alone(c)]
        toks = sum(c.get("completion_tokens") or 0 for c in timed)
        secs = sum(c["generation_s"] for c in timed)
        entry["totals"] = {
            # the model-free engines count words, not tokens: no count without a timed call
            "completion_tokens": sum(c.get("completion_tokens") or 0 for c in cs) if timed else None,
            "generation_s": round(secs, 4) if timed else None,
            "tokens_per_s": round(toks / secs, 2) if secs > 0 and toks else None,
            "prepare_s": _max(c.get("prepare_s") for c in cs),
            "load_s": _max(c.get("load_s") for c in cs),
            "peak_memory_bytes": _max(c.get("peak_memory_bytes") for c in cs if not c.get("overlapped_with")),
            "wall_s": round(sum(c.get("wall_s") or 0 for c in cs), 3),
        }
    return out


def _max(values: Any) -> Any:
    """The largest measured value; None when nothing was measured."""
    measured = [v for v in values if v is not None]
    return max(measured) if measured else None


def write_performance_files(comparison: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model, entry in performance_by_model(comparison).items():
        path = out_dir / f"{re.sub(r'[^A-Za-z0-9_.@-]', '_', model)}.json"
        path.write_text(json.dumps(entry, indent=2) + "\n")
        paths.append(path)
    return paths
