"""Synthetic case results for the report tests: the report logic is fed
what the runner makes (typed CaseResults), with the adversarial shapes a
real run can produce (a model missing a dataset, ties, no speeds, one
model, thirty-six models, resumed cases, model-free engines)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from pytest_codeeval.report.writer import write_reports
from pytest_codeeval.results import CaseResult, Performance, SampleRow

TASK_TYPES = {"humaneval": "code", "mbpp": "code", "advanced_coding_sample": "code", "gsm8k": "math",
              "reasoning_sample": "math", "ifeval": "instruction_following",
              "function_calling_sample": "function_calling"}


def case(model: str, dataset: str, passed: Sequence[bool] | None = None, *, preset: str = "balanced",
         n: int = 20, p: float = 0.5, seed: int = 0, tokens_per_s: float | None = 100.0, status: str = "passed",
         generated: bool = True, load_s: float | None = 12.0, not_judged: dict[str, int] | None = None,
         cut_off: float | None = 0.0, unclosed: float | None = 0.0, multi: bool = False) -> CaseResult:
    """A case of ``n`` pass/fail items (``passed`` or drawn with probability ``p``)."""
    cid = f"{model}-{preset}-{dataset}" if multi else f"{model}-{dataset}"
    if status == "error":
        return CaseResult.errored({"id": cid, "model": model, "preset": preset, "dataset": dataset},
                                  "EngineError: the engine died")
    rng = random.Random(f"{model}/{dataset}/{seed}")
    outcome = list(passed) if passed is not None else [rng.random() < p for _ in range(n)]
    items = {f"{dataset}/{i}": float(x) for i, x in enumerate(outcome)}
    tokens = 150 * len(items)
    gen_s = tokens / tokens_per_s if tokens_per_s else None
    verdicts = {"passed": sum(outcome), "failed": len(outcome) - sum(outcome), **(not_judged or {})}
    samples = [SampleRow(task_id=i, sample=0, passed=bool(v), verdict="passed" if v else "failed",
                         detail="" if v else f"assert f({k}) == {k + 1}", prompt="Write f.", raw_output="def f(x): ...")
               for k, (i, v) in enumerate(items.items())]
    return CaseResult(
        case_id=cid, model=model, preset=preset, dataset=dataset, task_type=TASK_TYPES.get(dataset, "code"),
        n_items=len(items), primary_metric="pass@1", score=sum(outcome) / len(outcome) if outcome else 0.0,
        metrics={"pass@1": sum(outcome) / len(outcome) if outcome else 0.0}, item_scores=items,
        verdicts={k: v for k, v in verdicts.items() if v}, not_judged=sum((not_judged or {}).values()),
        cut_off=cut_off, unclosed_thinking=unclosed, sampling={"temperature": 0.0, "max_new_tokens": 512},
        prompt_template_hash="abc", wall_s=53.975,
        performance=Performance(
            prompt_tokens=80 * len(items), completion_tokens=tokens,
            generation_s=round(gen_s, 4) if gen_s is not None else None, tokens_per_s=tokens_per_s,
            scoring_s=1.234, load_s=load_s if generated else None,
            peak_memory_bytes=3 * 2 ** 30 if tokens_per_s else None, memory_kind="gpu" if tokens_per_s else None,
            device="cuda:0" if tokens_per_s else None, generated=len(items) if generated else 0,
            generations_reused=0 if generated else len(items), scored=len(items)),
        samples=samples,
    )


MODEL_NAMES = [
    "qwen3_0_6b", "qwen3_1_7b", "qwen3_4b", "qwen3_8b", "qwen3_14b", "qwen3_32b", "qwen2_5_coder_1_5b_instruct",
    "qwen2_5_coder_7b_instruct", "qwen2_5_coder_14b_instruct", "qwen2_5_coder_32b_instruct", "qwen2_5_7b_instruct",
    "llama_3_1_8b_instruct", "llama_3_2_1b_instruct", "llama_3_2_3b_instruct", "llama_3_3_70b_instruct",
    "deepseek_coder_6_7b_instruct", "deepseek_coder_v2_lite_instruct", "deepseek_r1_distill_qwen_1_5b",
    "deepseek_r1_distill_qwen_7b", "deepseek_r1_distill_qwen_14b", "deepseek_r1_distill_llama_8b",
    "mistral_7b_instruct_v0_3", "codestral_22b_v0_1", "mistral_nemo_instruct_2407", "phi_3_5_mini_instruct",
    "phi_4", "phi_4_mini_instruct", "gemma_2_2b_it", "gemma_2_9b_it", "gemma_3_12b_it", "starcoder2_3b",
    "starcoder2_7b", "starcoder2_15b_instruct_v0_1", "granite_3_1_8b_instruct", "yi_coder_9b_chat",
    "smollm2_135m_instruct",
]
DATASETS = ["humaneval", "mbpp", "advanced_coding_sample", "function_calling_sample", "reasoning_sample",
            "gsm8k", "ifeval"]


def many(models: int = 36, datasets: int = 7, n: int = 30) -> list[CaseResult]:
    """``models`` x ``datasets`` cases with spread-out scores and speeds; one case errored."""
    out = []
    for i, m in enumerate(MODEL_NAMES[:models]):
        for j, d in enumerate(DATASETS[:datasets]):
            status = "error" if (i, j) == (5, 2) else "passed"
            out.append(case(m, d, n=n, p=0.15 + 0.7 * ((i * 7 + j * 3) % 36) / 36, seed=i,
                            tokens_per_s=40.0 + 37.3 * i, status=status, not_judged={"sandbox_error": 3}
                            if (i, j) == (2, 0) else None, cut_off=0.1 if j == 5 else 0.0,
                            unclosed=0.2 if "r1" in m and j == 5 else 0.0))
    return out


def write(results: list[CaseResult], report_dir: Path, presets: Sequence[str] = ("balanced",),
          engine: str = "vllm", label: str = "synthetic") -> dict[str, Any]:
    """Writes every report of these results; returns the paths and the comparison."""
    paths = write_reports(report_dir, [r.to_dict() for r in results], run_id="synthetic0001", started_at=1_790_000_000.0,
                          finished_at=1_790_003_600.0, label=label, presets=list(presets), engine=engine,
                          options={"baseline": None}, manifest={"hardware": {"device": "gpu", "gpus": ["H200"]}})
    import json

    return {"paths": paths, "comparison": json.loads(paths["json"].read_text())}
