"""Placement, per-device memory and the transformers engine on a real GPU machine
that has no vLLM and no network (the machine lent to this project).

    python benchmarks/gpu_check.py --prepare DIR     # here: a model folder to carry (config + tokenizer, ~3.5 MB)
    python benchmarks/gpu_check.py --model-dir DIR   # there: the checks, in well under five minutes

The model is SmolLM2-135M's architecture with random weights, built from its
config on the device (no download, nothing large to carry); its tokenizer
and chat template are the real ones.  What is proven there:

1. NVML sees every device; per device used/free/total (engines/memory.Nvml).
2. Placement: --gpus is cut into one slice per worker (placement.Placement);
   each slice runs in its own process with CUDA_VISIBLE_DEVICES narrowed to
   it, as xdist workers do, and the GPU that process computes on is the one
   it was given (NVML UUID of the slice's device == torch's device UUID).
3. The transformers engine (``--engine hf``) generates on that GPU: batched,
   left-padded, chat template, n samples; token counts and tokens/s.
4. Memory per device: while a worker's engine holds memory, NVML shows it on
   that worker's device and not on the others; the engine's own figure
   (torch, "gpu_used") is within NVML's reading.

Exit status 0 when every check holds, 1 when one fails, 2 without a GPU
(``--allow-cpu`` runs the same steps on the CPU, as CI does, where the GPU
checks are skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

CARRIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
RESULT = "GPU_CHECK_RESULT "


def prepare(target: Path) -> None:
    """Copy the small files of the embedded model (no weights) into ``target``."""
    from pytest_codeeval.engines import smollm2

    source = smollm2.prepare(None)
    target.mkdir(parents=True, exist_ok=True)
    for name in CARRIED:
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"prepared {target} ({size / 2**20:.1f} MiB): carry it to the GPU machine")


def random_weights(model_dir: Path, out: Path) -> Path:
    """A loadable model folder: the carried config and tokenizer, random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    for name in CARRIED:
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, out / name)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir), dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    return out


def worker(model_dir: Path, devices: str, small: bool = False) -> dict[str, Any]:
    """One worker's share: its CUDA_VISIBLE_DEVICES was set by the parent from its slice."""
    import torch

    from pytest_codeeval.catalog import ModelSpec
    from pytest_codeeval.engines.base import Request, SamplingConfig
    from pytest_codeeval.engines.hf import HFEngine
    from pytest_codeeval.engines.memory import Nvml
    from pytest_codeeval.items import Item, Prompt

    spec = ModelSpec(name="random_smollm2", hf_id="", kind="chat", family="smollm2", dtype="bfloat16",
                     max_model_len=2048, source="path", path=str(model_dir))
    slice_ = [d for d in devices.split(",") if d]
    engine = HFEngine(spec, {"hf_batch_size": 8}, {"seed": 1, "devices": slice_})
    engine.load()
    # on the CPU (--allow-cpu), a token-sized run: it proves the steps, not the speed
    count, tokens = (2, 4) if small else (8, 32)
    prompts = [Prompt(f"p{i}", messages=({"role": "user", "content": f"Count to {i}."},)) for i in range(count)]
    requests = [Request(p, Item(p.item_id, "code", "", ""), SamplingConfig(temperature=0.7, max_new_tokens=tokens, n=2))
                for p in prompts]
    rows = engine.generate(requests)
    result: dict[str, Any] = {"devices": slice_, "engine_device": engine.stats.device,
                              "memory_kind": engine.stats.memory_kind, "engine_peak_bytes": engine.stats.peak_memory_bytes,
                              "samples": sum(len(r) for r in rows), **{k: engine.last_call[k] for k in
                                                                        ("wall_s", "completion_tokens", "tokens_per_s")}}
    if torch.cuda.is_available():
        result["torch_uuid"] = str(torch.cuda.get_device_properties(0).uuid)
        nvml = Nvml(slice_[0]) if slice_ else None
        if nvml is not None and nvml.available:
            uuid = nvml._pynvml.nvmlDeviceGetUUID(nvml._handle)
            result["nvml_uuid"] = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
            result["nvml_used_bytes_while_held"] = nvml.info()[0]
    engine.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, help="write the folder to carry and stop")
    parser.add_argument("--model-dir", type=Path, help="the carried folder")
    parser.add_argument("--gpus", default=None, help="as --gpus (default: every visible GPU)")
    parser.add_argument("--allow-cpu", action="store_true", help="run the steps without a GPU (the GPU checks skip)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return 0
    if args.worker is not None:
        print(RESULT + json.dumps(worker(args.model_dir, args.worker, small=args.allow_cpu)), flush=True)
        return 0

    from pytest_codeeval.engines.memory import Nvml
    from pytest_codeeval.placement import Placement, parse_gpus

    start = time.time()
    gpus = parse_gpus(args.gpus)
    if not gpus and not args.allow_cpu:
        print("no CUDA GPU visible (use --allow-cpu to run the steps on the CPU)")
        return 2
    failures: list[str] = []
    report: dict[str, Any] = {"gpus": gpus}

    print(f"[1] NVML: {len(gpus)} device(s)")
    for d in gpus:
        n = Nvml(d)
        if n.available:
            used, free, total = n.info()
            print(f"    GPU {d}: {n.name()}, {used / 2**30:.2f} GiB used, {free / 2**30:.2f} of {total / 2**30:.2f} free")
        else:
            failures.append(f"NVML cannot read GPU {d}")

    workers = min(2, len(gpus)) or 1
    slices = [Placement.for_worker(gpus, i, workers).devices for i in range(workers)]
    print(f"[2] placement: {workers} worker(s), slices {[list(s) for s in slices]}")
    model_dir = random_weights(args.model_dir, Path(os.environ.get("TMPDIR", "/tmp")) / "gpu_check_model")
    procs = []
    for s in slices:
        env = dict(os.environ)
        if s:
            env.update(CUDA_VISIBLE_DEVICES=",".join(s), CUDA_DEVICE_ORDER="PCI_BUS_ID")
        cmd = [sys.executable, __file__, "--model-dir", str(model_dir), "--worker", ",".join(s)]
        procs.append(subprocess.Popen(cmd + (["--allow-cpu"] if args.allow_cpu else []), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for s, proc in zip(slices, procs):
        out, err = proc.communicate(timeout=600)
        line = next((ln for ln in out.splitlines() if ln.startswith(RESULT)), None)
        if line is None:
            failures.append(f"worker on {list(s)} failed: {err[-800:]}")
            continue
        r = json.loads(line[len(RESULT):])
        results.append(r)
        print(f"[3] worker on {r['devices'] or 'cpu'}: engine on {r['engine_device']}, {r['samples']} samples, "
              f"{r['completion_tokens']} tokens in {r['wall_s']:.2f} s = {r['tokens_per_s']:.0f} tokens/s, "
              f"engine peak {r['engine_peak_bytes'] / 2**30:.2f} GiB ({r['memory_kind']})")
        if s:
            same = r.get("torch_uuid", "").replace("GPU-", "") == str(r.get("nvml_uuid", "")).replace("GPU-", "")
            print(f"[2] worker given GPU {s[0]} computed on the same device (UUID match): {same}")
            if not same:
                failures.append(f"worker given {list(s)} computed on another device")
            held = r.get("nvml_used_bytes_while_held", 0)
            print(f"[4] GPU {s[0]} while its engine held memory: NVML {held / 2**30:.2f} GiB used, "
                  f"engine's own figure {r['engine_peak_bytes'] / 2**30:.2f} GiB")
            if r["engine_peak_bytes"] > held:
                failures.append(f"engine figure above NVML's reading on GPU {s[0]}")
        if r["completion_tokens"] <= 0:
            failures.append("no tokens generated")
    report.update(workers=results, failures=failures, seconds=round(time.time() - start, 1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print("all checks hold" if not failures else "FAILED: " + "; ".join(failures))
    print(f"({report['seconds']} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
