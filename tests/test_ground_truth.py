"""Ground truth: every dataset available offline scores 100% with its own
reference answers, code through the sandbox (the check that catches a broken
dataset or a broken harness)."""

from __future__ import annotations

import json

import pytest

from helpers import SHARED_DATASETS, needs_shared

# Every dataset that loads here: the shipped ones, HumanEval from its package,
# and the public sets from ../shared/datasets.  humaneval_plus and mbpp_plus
# exist only on the hub.
OFFLINE = [
    "humaneval", "mbpp", "mbpp_sanitized", "gsm8k", "ifeval",
    "bfcl_simple", "bfcl_multiple", "bfcl_parallel", "bfcl_parallel_multiple",
    "advanced_coding_sample", "advanced_coding_extended", "function_calling_sample",
    "reasoning_sample", "instruction_following_sample",
]


@needs_shared
def test_every_offline_dataset_scores_100_percent_on_its_references(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(
        "-q", "-rs", "--ground-truth", f"--data-dir={SHARED_DATASETS}", "--datasets", ",".join(OFFLINE),
        timeout=1500,
    )
    assert result.ret == 0, result.stdout.str()[-4000:]
    report = json.loads((suite.path / "reports" / "comparisons" / "custom_balanced_comparison.json").read_text())
    scores = {c["dataset"]: c.get("score") for c in report["cases"]}
    # IFEval publishes no reference responses: skipped with its reason, not scored.
    result.stdout.fnmatch_lines(["*SKIPPED*ifeval publishes no reference answers*"])
    assert set(scores) == set(OFFLINE) - {"ifeval"}
    assert scores == {d: 1.0 for d in scores}
    counts = {c["dataset"]: c["n_items"] for c in report["cases"]}
    assert counts["humaneval"] == 164 and counts["mbpp"] == 500 and counts["mbpp_sanitized"] == 257
    assert counts["gsm8k"] == 1319 and counts["bfcl_simple"] == 400
