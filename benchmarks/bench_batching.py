"""One submission per model: the suite's engine against one bare ``llm.chat``
over the same prompts, in the same run, on one loaded vLLM engine.

    python benchmarks/bench_batching.py [--samples 5] [--rounds 2] [--preset balanced] [--per-dataset]

The prompts are those of ``pytest -m cpu_smoke --samples N`` (the embedded
SmolLM2 on every offline dataset; each dataset with its own token budget),
built by the suite's own session code. Per round, in alternating order:

* suite: what the ``codeeval_engine`` fixture does at setup: the caching
  engine (over a fresh store, so nothing is reused) asks the engine for every
  request of the model's cases in one call, and stores the answers;
* bare: one ``llm.chat`` over the same conversations, with the same
  per-request ``SamplingParams``, on the same ``vllm.LLM`` object;
* with ``--per-dataset``, also the old way: one suite call per dataset.

Greedy decoding, so both make the same tokens. The last line reads
``suite/bare wall ratio: R`` (total wall over the rounds; target <= 1.1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cpu_smoke_requests(samples: int) -> tuple[Any, dict[str, list[Any]]]:
    """The SmolLM2 model spec and the requests of cpu_smoke's cases, per dataset, in plan order."""
    from pytest_codeeval.catalog import category_datasets, load_catalog
    from pytest_codeeval.datasets import LoadContext, load_dataset
    from pytest_codeeval.engines.base import Request, SamplingConfig
    from pytest_codeeval.prompts import build_prompt

    catalog = load_catalog()
    cat = catalog.category("cpu_smoke")
    model = catalog.model(cat.models[0])
    requests: dict[str, list[Any]] = {}
    for name in category_datasets(catalog, cat):
        dataset = catalog.dataset(name)
        sampling = SamplingConfig(temperature=0.0, max_new_tokens=dataset.max_new_tokens)
        requests[name] = [Request(build_prompt(item, dataset, model), item, sampling)
                          for item in load_dataset(dataset, LoadContext.from_env())[:samples]]
    return model, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5, help="items per dataset (as --samples)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--per-dataset", action="store_true", help="also time one call per dataset (the old way)")
    args = parser.parse_args()

    from vllm import SamplingParams

    from pytest_codeeval.catalog import load_catalog
    from pytest_codeeval.engines.base import Request, SamplingConfig
    from pytest_codeeval.engines.cached import CachingEngine
    from pytest_codeeval.engines.vllm_engine import VLLMEngine
    from pytest_codeeval.store import open_store

    model, by_dataset = cpu_smoke_requests(args.samples)
    requests = [r for rs in by_dataset.values() for r in rs]
    catalog = load_catalog()
    settings = catalog.engine_settings(model, catalog.preset(args.preset))
    engine = VLLMEngine(model, settings, {"seed": 1234})
    engine.load()
    print(f"{len(requests)} prompts ({args.samples} per cpu_smoke dataset), model {model.name}, preset "
          f"{args.preset}, greedy; engine loaded in {engine.stats.load_seconds:.1f} s", flush=True)
    llm = engine._llm  # the vllm.LLM the suite's engine wraps: same settings by construction
    conversations = [list(r.prompt.messages) for r in requests]
    params = [SamplingParams(temperature=0.0, max_tokens=r.sampling.max_new_tokens) for r in requests]
    warm = [Request(r.prompt, r.item, SamplingConfig(max_new_tokens=8)) for r in requests[:2]]
    engine.generate(warm)  # warm-up: first-call costs land in neither arm

    def bare() -> tuple[float, int]:
        start = time.perf_counter()
        outputs = llm.chat(conversations, params, use_tqdm=False)
        return time.perf_counter() - start, sum(len(c.token_ids) for o in outputs for c in o.outputs)

    def suite(groups: list[list[Any]]) -> tuple[float, int]:
        with tempfile.TemporaryDirectory() as tmp:
            cached = CachingEngine(open_store(Path(tmp) / "s.sqlite"), {"bench": time.time()}, lambda: engine,
                                   kind="vllm", engine_key=f"{model.name}@{args.preset}")
            start = time.perf_counter()
            rows = [g for group in groups for g in cached.generate(group)]
            wall = time.perf_counter() - start
        return wall, sum(x.completion_tokens for row in rows for x in row)

    totals = {"suite": 0.0, "bare": 0.0, "per_dataset": 0.0}
    for i in range(args.rounds):
        arms = [("suite", lambda: suite([requests])), ("bare", bare)]
        if args.per_dataset:
            arms.append(("per_dataset", lambda: suite(list(by_dataset.values()))))
        if i % 2:
            arms.reverse()
        for name, run in arms:
            wall, tokens = run()
            totals[name] += wall
            print(f"round {i + 1}: {name:<11} {wall:7.1f} s  {tokens:6d} tokens  {tokens / wall:7.1f} tokens/s",
                  flush=True)
    engine.close()
    if args.per_dataset:
        print(f"per-dataset/bare wall ratio: {totals['per_dataset'] / totals['bare']:.2f}")
    print(f"suite/bare wall ratio: {totals['suite'] / totals['bare']:.2f}")


if __name__ == "__main__":
    main()
