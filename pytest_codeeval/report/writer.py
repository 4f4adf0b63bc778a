"""Writes every report of a run into the report dir: the comparison JSON
(validated against its schema), the Markdown, the per-sample logs, the
plots, the per-model performance files and the self-contained HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .comparison import build_comparison, validate_comparison
from .markdown import render_markdown
from .samples import sample_log_name, write_sample_log


def write_reports(report_dir: Path, results: list[dict[str, Any]], **run: Any) -> dict[str, Path]:
    """``run`` holds the keyword arguments of :func:`build_comparison`
    (run_id, started_at, finished_at, label, presets, engine, options, manifest).

    Returns {"json", "markdown", "html", "samples", "plots", "performance": path}."""
    label, presets = run["label"], run["presets"]
    multi = len(presets) > 1
    samples_dir = report_dir / "samples"
    for r in results:
        if r.get("samples") is not None:
            path = samples_dir / sample_log_name(r, multi)
            write_sample_log(path, r)
            r["sample_log"] = str(path.relative_to(report_dir))
    comparison = build_comparison(results, **run)
    stem = f"{label}_{'+'.join(presets)}_comparison"
    json_path = report_dir / "comparisons" / f"{stem}.json"
    md_path = report_dir / "markdown" / f"{stem}.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(comparison, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(render_markdown(comparison))
    paths: dict[str, Path] = {"json": json_path, "markdown": md_path, "samples": samples_dir}
    problems = validate_comparison(comparison)
    if problems:  # a bug of ours, never the user's: say so, keep the file
        import logging

        logging.getLogger("pytest_codeeval").error("comparison JSON does not match its schema: %s", problems[:5])
    from .html import render_html
    from .performance import write_performance_files
    from .plots import write_plots

    plots = write_plots(comparison, report_dir / "plots", stem)
    perf = write_performance_files(comparison, report_dir / "performance")
    html_path = report_dir / "html" / f"{stem}.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(comparison, results, plots), encoding="utf-8")
    paths.update(html=html_path, plots=report_dir / "plots", performance=report_dir / "performance")
    if perf:
        paths["performance"] = perf[0].parent
    return paths
