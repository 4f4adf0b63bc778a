"""Writing a finished (or interrupted) run's reports from its session state."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..overlap import mark_overlaps
from ..plan import plan_label
from ..shards import shard_options
from .manifest import run_manifest
from .writer import write_reports


def run_options(state: Any) -> dict[str, Any]:
    """The options that shape results, as the comparison records them."""
    o = state.options
    return {"samples": o.samples, "n_samples": o.n_samples, "pass_k": list(o.pass_k),
            "sampling": o.sampling, "temperature": o.temperature, "top_p": o.top_p, "top_k": o.top_k,
            "thinking": o.thinking, "max_thinking_tokens": o.max_thinking_tokens, "seed": o.seed,
            "max_new_tokens": o.max_new_tokens, "completions": str(o.completions) if o.completions else None,
            "baseline": str(o.baseline) if o.baseline else None, "fresh": o.fresh,
            "scorer_options": [f"{d + ':' if d else ''}{n}={v!r}" for d, n, v in o.scorer_options],
            "store": str(state.durable.store.path) if state.durable is not None else None,
            **shard_options(state)}


def write_run_reports(state: Any) -> dict[str, Path]:
    from ..session import ensure_writable

    ensure_writable(state.report_dir)
    o = state.options
    results = state.ordered_results()
    mark_overlaps(results)  # only the controller sees every worker's timing windows
    return write_reports(
        state.report_dir, [r.to_dict() for r in results], run_id=state.run_id,
        started_at=state.started_at, finished_at=time.time(), label=plan_label(o, state.catalog),
        presets=list(o.presets), engine=o.engine, options=run_options(state), manifest=run_manifest(state),
    )


__all__ = ["write_run_reports", "run_options"]
