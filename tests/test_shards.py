"""Shards (--shard I/N) and their merge (python -m pytest_codeeval merge): the
shards of a run, merged, are that run; shards that disagree are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_codeeval.errors import CodeevalError
from pytest_codeeval.plan import Case
from pytest_codeeval.scale_options import parse_shard
from pytest_codeeval.shards import assign

STEM = "cpu_smoke_balanced_comparison"
RUN = ("-q", "-p", "no:cacheprovider", "-m", "cpu_smoke", "--engine=reference", "--samples=3")


def _comparison(report_dir: Path) -> dict:
    return json.loads((report_dir / "comparisons" / f"{STEM}.json").read_text())


def _merge(cwd: Path, out: str, *dirs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_codeeval", "merge", f"--report-dir={out}", *dirs],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_shards_of_a_run_merged_are_that_run(suite: pytest.Pytester) -> None:
    """The issue's check: --shard 1/2 and 2/2 of cpu_smoke on the reference engine, merged, give the
    same cases and metrics as one unsharded run, with every report a run writes."""
    for args in ([], ["--shard=1/2"], ["--shard=2/2"]):
        name = args[0].replace("--shard=", "s").replace("/", "of") if args else "whole"
        result = suite.runpytest_subprocess(*RUN, *args, f"--report-dir={name}")
        assert result.ret == 0, result.stdout.str()[-3000:]
    s1, s2 = _comparison(suite.path / "s1of2"), _comparison(suite.path / "s2of2")
    assert s1["cases"] and s2["cases"]  # one pseudo-model: the plan is cut in two contiguous slices
    assert not {c["case_id"] for c in s1["cases"]} & {c["case_id"] for c in s2["cases"]}
    assert s1["options"]["shard"]["cases"] == s2["options"]["shard"]["cases"]

    done = _merge(suite.path, "merged", "s1of2", "s2of2")
    assert done.returncode == 0, done.stderr
    whole, merged = _comparison(suite.path / "whole"), _comparison(suite.path / "merged")
    assert [c["case_id"] for c in merged["cases"]] == [c["case_id"] for c in whole["cases"]]
    for key in ("score", "metrics", "item_scores", "verdicts", "n_items", "ci", "status", "primary_metric"):
        assert [c[key] for c in merged["cases"]] == [c[key] for c in whole["cases"]], key
    assert merged["rankings"] == whole["rankings"]
    assert merged["best_per_dataset"] == whole["best_per_dataset"]
    assert [s["shard"] for s in merged["manifest"]["merged_from"]] == ["1/2", "2/2"]
    # Every shard's datasets in the manifest (each shard held some of them).
    assert set(s1["manifest"]["datasets"]) != set(whole["manifest"]["datasets"])
    assert merged["manifest"]["datasets"] == whole["manifest"]["datasets"]
    assert "shard" not in merged["options"]
    # Every report a single run writes.
    out = suite.path / "merged"
    assert (out / "markdown" / f"{STEM}.md").is_file() and (out / "html" / f"{STEM}.html").is_file()
    assert sorted(p.name for p in (out / "samples").iterdir()) == sorted(p.name for p in (suite.path / "whole" /
                                                                                          "samples").iterdir())
    assert sorted(p.name for p in (out / "performance").iterdir()) == ["reference.json"]
    assert any((out / "plots").iterdir())
    rows = [json.loads(x) for x in (out / merged["cases"][0]["sample_log"]).read_text().splitlines()]
    assert len(rows) == 3 and all(r["passed"] for r in rows)

    # A shard given alone: merged, with a warning naming what is missing.
    alone = _merge(suite.path, "half", "s1of2")
    assert alone.returncode == 0 and "shards not given: 2/2" in alone.stderr
    # The same shard twice is refused.
    twice = _merge(suite.path, "twice", "s1of2", "s1of2")
    assert twice.returncode == 2 and "both are shard 1/2" in twice.stderr


def test_shards_that_disagree_are_refused_naming_the_difference(suite: pytest.Pytester) -> None:
    for shard, samples in (("1/2", "3"), ("2/2", "2")):
        result = suite.runpytest_subprocess(*RUN[:-1], f"--samples={samples}", f"--shard={shard}",
                                            f"--report-dir=s{shard[0]}")
        assert result.ret == 0, result.stdout.str()[-3000:]
    refused = _merge(suite.path, "merged", "s1", "s2")
    assert refused.returncode == 2
    assert "options.samples: 3 vs 2" in refused.stderr and "same command" in refused.stderr
    assert not (suite.path / "merged").exists()

    # Hashes another machine could see differently: the data and the prompt templates.
    path = suite.path / "s2" / "comparisons" / f"{STEM}.json"
    data = json.loads(path.read_text())
    data["options"]["samples"] = 3
    first = _comparison(suite.path / "s1")
    data["manifest"]["datasets"] = {"humaneval": {"sha256": "0" * 64}}
    first["manifest"]["datasets"] = {"humaneval": {"sha256": "f" * 64}}
    data["manifest"]["prompt_templates"]["code"] = "changed"
    (suite.path / "s1" / "comparisons" / f"{STEM}.json").write_text(json.dumps(first))
    path.write_text(json.dumps(data))
    refused = _merge(suite.path, "merged", "s1", "s2")
    assert refused.returncode == 2
    assert "manifest.datasets.humaneval.sha256" in refused.stderr
    assert "manifest.prompt_templates.code" in refused.stderr and "options.samples" not in refused.stderr

    # A model both shards ran, with other weights; where its adapter folder was is no difference.
    entry = {"hf_id": "org/m", "revision": "a", "adapter": {"name": "m", "source": "/x", "sha256": "1"}}
    first["manifest"]["models"] = {"m": entry}
    data["manifest"]["models"] = {"m": {**entry, "adapter": {**entry["adapter"], "source": "/y"}}}
    data["manifest"]["datasets"], data["manifest"]["prompt_templates"] = (first["manifest"]["datasets"],
                                                                          first["manifest"]["prompt_templates"])
    (suite.path / "s1" / "comparisons" / f"{STEM}.json").write_text(json.dumps(first))
    path.write_text(json.dumps(data))
    assert _merge(suite.path, "merged", "s1", "s2").returncode == 0
    data["manifest"]["models"]["m"]["revision"] = "b"
    path.write_text(json.dumps(data))
    refused = _merge(suite.path, "merged2", "s1", "s2")
    assert refused.returncode == 2 and 'manifest.models.m: {"hf_id": "org/m", "revision": "a"' in refused.stderr


def test_a_report_dir_without_a_comparison_is_refused(tmp_path: Path) -> None:
    done = _merge(tmp_path, "out", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "no comparison JSON" in done.stderr


def _cases(models: int, datasets: int) -> list[Case]:
    return [Case(f"m{m}", "balanced", f"d{d}") for m in range(models) for d in range(datasets)]


def test_whole_engines_go_to_shards_when_there_are_enough() -> None:
    cases = _cases(5, 3)
    shards = assign(cases, 2, lambda c: 1)
    by_engine = {c.engine_key: {s for c2, s in zip(cases, shards) if c2.engine_key == c.engine_key} for c in cases}
    assert all(len(s) == 1 for s in by_engine.values())  # each model loads on one machine
    assert sorted(shards.count(i) for i in range(2)) == [6, 9]  # 3 + 2 engines of 3 cases
    assert assign(cases, 2, lambda c: 1) == shards  # deterministic


def test_fewer_engines_than_shards_cut_the_plan_into_contiguous_slices() -> None:
    cases = _cases(1, 6)
    assert assign(cases, 2, lambda c: 1) == [0, 0, 0, 1, 1, 1]
    assert assign(cases, 3, lambda c: 10 if c.dataset == "d0" else 1) == [0, 1, 2, 2, 2, 2]
    assert assign(_cases(1, 2), 4, lambda c: 1) == [0, 1]  # more shards than cases: the last run nothing


@pytest.mark.parametrize("raw", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_a_usage_error(raw: str) -> None:
    with pytest.raises(CodeevalError, match=r"--shard .*1 <= I <= N"):
        parse_shard(raw)
    assert parse_shard("2/3") == (2, 3)
