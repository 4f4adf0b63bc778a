"""Generation throughput: the suite's VLLMEngine vs a bare vLLM call vs HF transformers.

    python benchmarks/bench_throughput.py [--prompts 32] [--max-new-tokens 256] [--preset balanced]
                                          [--model smollm2_135m_instruct] [--skip-hf]

On the same HumanEval prompts (chat template, greedy), one after the other in
separate processes so that each starts with all of the machine's memory:

* suite: ``VLLMEngine(model, settings, options).generate(...)``, exactly what a
  benchmark case runs (the prompts are built before the clock starts, as in
  the runner);
* bare: ``LLM(**same engine kwargs).chat(all prompts, SamplingParams(...))``;
* hf: the suite's transformers engine (``--engine hf``): ``generate`` on one
  left-padded batch of all prompts, the naive baseline.

tokens/s counts generated tokens (up to and including EOS) over the wall time
of the generation call only; load time is printed separately. The target is
suite >= 0.95 x bare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

RESULT_TAG = "BENCH_RESULT "


def _setup(args: argparse.Namespace) -> tuple[Any, dict[str, Any], list[Any], list[Any]]:
    from pytest_codeeval.catalog import load_catalog
    from pytest_codeeval.datasets import load_dataset
    from pytest_codeeval.datasets.context import LoadContext
    from pytest_codeeval.prompts import build_prompt

    catalog = load_catalog()
    model = catalog.model(args.model)
    settings = catalog.engine_settings(model, catalog.preset(args.preset))
    dataset = catalog.dataset("humaneval")
    items = load_dataset(dataset, LoadContext.from_env())[: args.prompts]
    prompts = [build_prompt(item, dataset, model) for item in items]
    return model, settings, items, prompts


def _requests(prompts: list[Any], items: list[Any], sampling: Any) -> list[Any]:
    from pytest_codeeval.engines.base import Request

    return [Request(p, it, sampling) for p, it in zip(prompts, items)]


def _options() -> dict[str, Any]:
    return {"base_url": None, "server_model": None, "system_prompt": None, "cache_dir": None,
            "seed": 1234, "concurrency": 32, "timeout_s": 600.0}


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    from pytest_codeeval.engines.base import SamplingConfig
    from pytest_codeeval.engines.vllm_engine import VLLMEngine

    model, settings, items, prompts = _setup(args)
    engine = VLLMEngine(model, settings, _options())
    engine.load()
    try:
        sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens, n=1)
        engine.generate(_requests(prompts[:2], items[:2], SamplingConfig(temperature=0.0, max_new_tokens=8)))
        engine.generate(_requests(prompts, items, sampling))
        call = engine.last_call
        return {"load_s": engine.stats.load_seconds, "wall_s": call["wall_s"],
                "completion_tokens": call["completion_tokens"], "prompt_tokens": call["prompt_tokens"],
                "peak_memory_bytes": engine.stats.peak_memory_bytes,
                "engine_args": engine.stats.extra.get("engine_args", {}),
                "cpu_kvcache_space_gib": engine.stats.extra.get("cpu_kvcache_space_gib")}
    finally:
        engine.close()


def run_paired(args: argparse.Namespace) -> dict[str, Any]:
    """Suite and bare calls alternating on one loaded engine: the same LLM object,
    so the settings are identical by construction, and on a shared machine the
    load of other processes hits both sides alike."""
    from vllm import SamplingParams

    from pytest_codeeval.engines.base import SamplingConfig
    from pytest_codeeval.engines.vllm_engine import VLLMEngine

    model, settings, items, prompts = _setup(args)
    engine = VLLMEngine(model, settings, _options())
    engine.load()
    try:
        llm = engine._llm  # the bare vllm.LLM the suite's engine wraps
        conversations = [list(p.messages) for p in prompts]
        params = SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens)
        sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens, n=1)
        llm.chat(conversations[:2], SamplingParams(temperature=0.0, max_tokens=8), use_tqdm=False)  # warm-up
        rounds: list[dict[str, float]] = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            outputs = llm.chat(conversations, params, use_tqdm=False)
            bare_s = time.perf_counter() - start
            bare_tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
            engine.generate(_requests(prompts, items, sampling))
            rounds.append({"bare_tps": bare_tokens / bare_s, "suite_tps": engine.last_call["tokens_per_s"],
                           "bare_tokens": bare_tokens, "suite_tokens": engine.last_call["completion_tokens"]})
            print(f"    round: bare {rounds[-1]['bare_tps']:.1f} tokens/s, suite {rounds[-1]['suite_tps']:.1f} tokens/s",
                  file=sys.stderr, flush=True)
        return {"load_s": engine.stats.load_seconds, "rounds": rounds}
    finally:
        engine.close()


def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    from vllm import LLM, SamplingParams
    from vllm.platforms import current_platform

    from pytest_codeeval.engines.vllm_engine import VLLMEngine, cpu_kvcache_gib, supported_engine_args

    model, settings, _, prompts = _setup(args)
    # The same LLM(...) arguments and KV-cache setting the suite's engine uses.
    probe = VLLMEngine(model, settings, _options())
    probe.model_path = probe.resolve_model()
    on_gpu = not current_platform.is_cpu()
    kwargs, _ = supported_engine_args(probe.build_engine_kwargs(on_gpu))
    if not on_gpu:
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(cpu_kvcache_gib(settings))
    start = time.perf_counter()
    llm = LLM(**kwargs)
    load_s = time.perf_counter() - start
    conversations = [list(p.messages) for p in prompts]
    params = SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens)
    llm.chat(conversations[:2], SamplingParams(temperature=0.0, max_tokens=8), use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outputs = llm.chat(conversations, params, use_tqdm=False)
    wall = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    llm.llm_engine.engine_core.shutdown()
    return {"load_s": load_s, "wall_s": wall, "completion_tokens": tokens,
            "prompt_tokens": sum(len(o.prompt_token_ids) for o in outputs), "engine_args": kwargs}


def run_hf(args: argparse.Namespace) -> dict[str, Any]:
    """The suite's transformers engine (--engine hf): one left-padded batch of all prompts."""
    from pytest_codeeval.engines.base import SamplingConfig
    from pytest_codeeval.engines.hf import HFEngine

    model, settings, items, prompts = _setup(args)
    engine = HFEngine(model, {**settings, "hf_batch_size": len(prompts)}, _options())
    engine.load()
    try:
        engine.generate(_requests(prompts, items, SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens)))
        call = engine.last_call
        return {"load_s": engine.stats.load_seconds, "wall_s": call["wall_s"],
                "completion_tokens": call["completion_tokens"], "prompt_tokens": call["prompt_tokens"]}
    finally:
        engine.close()


PHASES = {"suite": run_suite, "bare": run_bare, "hf": run_hf, "paired": run_paired}


def _child(args: argparse.Namespace) -> None:
    result = PHASES[args.phase](args)
    print(RESULT_TAG + json.dumps(result, default=str), flush=True)


def _run_phase(phase: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--phase", phase, "--prompts", str(args.prompts),
           "--max-new-tokens", str(args.max_new_tokens), "--preset", args.preset, "--model", args.model,
           "--rounds", str(args.rounds)]
    print(f"--- {phase}: {' '.join(cmd[2:])}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
            if phase == "paired":
                return result
            result["tokens_per_s"] = result["completion_tokens"] / result["wall_s"]
            print(f"    load {result['load_s']:.1f} s, {result['completion_tokens']} tokens in "
                  f"{result['wall_s']:.1f} s = {result['tokens_per_s']:.1f} tokens/s", flush=True)
            return result
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
    raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--model", default="smollm2_135m_instruct")
    parser.add_argument("--skip-hf", action="store_true", help="skip the transformers baseline")
    parser.add_argument("--paired", action="store_true",
                        help="instead: alternate bare llm.chat and the suite's generate on ONE loaded engine "
                             "(--rounds times); steadier on a shared machine")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _child(args)
        return

    print(f"{args.prompts} HumanEval prompts, chat template, greedy, {args.max_new_tokens} new tokens, "
          f"model {args.model}, preset {args.preset}")
    if args.paired:
        paired = _run_phase("paired", args)
        bare_total = sum(r["bare_tokens"] / r["bare_tps"] for r in paired["rounds"])
        suite_total = sum(r["suite_tokens"] / r["suite_tps"] for r in paired["rounds"])
        bare_tps = sum(r["bare_tokens"] for r in paired["rounds"]) / bare_total
        suite_tps = sum(r["suite_tokens"] for r in paired["rounds"]) / suite_total
        for i, r in enumerate(paired["rounds"]):
            print(f"round {i}: bare {r['bare_tps']:.1f} tokens/s, suite {r['suite_tps']:.1f} tokens/s, "
                  f"ratio {r['suite_tps'] / r['bare_tps']:.3f}")
        ratio = suite_tps / bare_tps
        print(f"\nsuite {suite_tps:.1f} tokens/s, bare {bare_tps:.1f} tokens/s over {len(paired['rounds'])} rounds; "
              f"suite / bare vLLM = {ratio:.3f} (target >= 0.95): {'OK' if ratio >= 0.95 else 'BELOW TARGET'}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "paired": paired, "suite_over_bare": ratio}, f, indent=2)
        return
    results = {phase: _run_phase(phase, args) for phase in (["bare", "suite"] + ([] if args.skip_hf else ["hf"]))}
    bare = results["bare"]["tokens_per_s"]
    print()
    print(f"{'engine':<8} {'tokens/s':>9} {'x bare':>7} {'load s':>7} {'tokens':>7}")
    for name, r in results.items():
        print(f"{name:<8} {r['tokens_per_s']:>9.1f} {r['tokens_per_s'] / bare:>7.3f} {r['load_s']:>7.1f} "
              f"{r['completion_tokens']:>7}")
    ratio = results["suite"]["tokens_per_s"] / bare
    print(f"\nsuite / bare vLLM = {ratio:.3f} (target >= 0.95): {'OK' if ratio >= 0.95 else 'BELOW TARGET'}")
    if "hf" in results:
        print(f"suite / transformers batched = {results['suite']['tokens_per_s'] / results['hf']['tokens_per_s']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results, "suite_over_bare": ratio}, f, indent=2)


if __name__ == "__main__":
    main()
