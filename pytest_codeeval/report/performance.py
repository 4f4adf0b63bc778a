"""Per-model performance files: load time, throughput, memory and wall
time of each of the model's cases, with the hardware they ran on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .comparison import model_label

PERF_FIELDS = ("load_s", "tokens_per_s", "completion_tokens", "prompt_tokens", "generation_s", "scoring_s",
               "peak_memory_bytes", "memory_kind", "device", "host", "node", "generations_reused",
               "generated")


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
        toks = sum(c.get("completion_tokens") or 0 for c in cs)
        secs = sum(c.get("generation_s") or 0 for c in cs)
        entry["totals"] = {
            "completion_tokens": toks, "generation_s": round(secs, 4),
            "tokens_per_s": round(toks / secs, 2) if secs > 0 else None,
            "load_s": max((c.get("load_s") or 0 for c in cs), default=0),
            "peak_memory_bytes": max((c.get("peak_memory_bytes") or 0 for c in cs), default=0),
            "wall_s": round(sum(c.get("wall_s") or 0 for c in cs), 3),
        }
    return out


def write_performance_files(comparison: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model, entry in performance_by_model(comparison).items():
        path = out_dir / f"{re.sub(r'[^A-Za-z0-9_.@-]', '_', model)}.json"
        path.write_text(json.dumps(entry, indent=2) + "\n")
        paths.append(path)
    return paths
