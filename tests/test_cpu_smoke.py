"""The README's main job, end to end on the real engine: the embedded
SmolLM2-135M-Instruct loaded once with vLLM on the CPU, generating for every
offline dataset of cpu_smoke, scored, reported.  This is the test that proves
the real engine path in CI (one model load, ~1-3 minutes on 2 cores)."""

from __future__ import annotations

import json

import pytest

CPU_SMOKE = ["humaneval", "advanced_coding_sample", "advanced_coding_extended", "function_calling_sample",
             "reasoning_sample", "instruction_following_sample"]


def test_cpu_smoke_runs_the_real_model_once_over_every_offline_dataset(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(
        "-v", "-m", "cpu_smoke", "--preset=balanced", "--samples", "2", "--max-new-tokens", "96",
        "--setup-show", timeout=1500,
    )
    out = result.stdout.str()
    assert result.ret == 0, out[-5000:]
    # One engine, loaded once and torn down once, for all six cases.
    assert out.count("SETUP    S codeeval_engine['smollm2_135m_instruct@balanced']") == 1
    assert out.count("TEARDOWN S codeeval_engine['smollm2_135m_instruct@balanced']") == 1
    report = json.loads((suite.path / "reports" / "comparisons" / "cpu_smoke_balanced_comparison.json").read_text())
    assert sorted(c["dataset"] for c in report["cases"]) == sorted(CPU_SMOKE)
    for case in report["cases"]:
        perf = case["performance"]
        assert case["status"] == "passed" and case["n_items"] == 2
        assert case["engine"]["kind"] == "vllm"
        assert perf["completion_tokens"] > 0 and perf["tokens_per_s"] > 0
        assert perf["load_s"] > 0 and perf["peak_memory_bytes"] > 0
        assert 0.0 <= case["score"] <= 1.0
    # Real outputs, not references: the samples hold model text.
    rows = [json.loads(x) for x in (suite.path / "reports" / "samples" /
                                    "smollm2_135m_instruct__reasoning_sample.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["raw_output"].strip() for r in rows)
    md = (suite.path / "reports" / "markdown" / "cpu_smoke_balanced_comparison.md").read_text()
    assert "smollm2_135m_instruct" in md and "tokens/s" in md
