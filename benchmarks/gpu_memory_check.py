"""GPU memory accounting on a real GPU, for a machine where vLLM cannot be installed.

    python benchmarks/gpu_memory_check.py [--gib 8] [--model smollm2_135m_instruct] [--json out.json]

``gpu_proof.py`` needs the CUDA build of vLLM. Where that is missing (the GPU
machines lent here have no network, and the vllm wheel alone is over 400 MiB,
more than can be carried to them), this script checks, on the real device,
the parts of the suite's vLLM engine that do not need vLLM itself:

1. NVML (``engines/memory.Nvml``) reads the device name and used/free/total.
2. ``PeakSampler("gpu")`` catches the peak memory taken by *another process*
   over the pre-load baseline. vLLM's engine core is a spawned child, so this
   is the figure the reports print as peak GPU memory.
3. Once that process exits, NVML sees the memory come back. The engine checks
   this between models.
4. The pre-load check (``VLLMEngine._check_gpu_before_load``) compares each
   preset's request (gpu_memory_utilization x total) with the free memory. With
   the GPU partly taken by another process, it must refuse the presets that
   cannot fit, naming the fix, and accept the ones that can.

Exit status: 0 when every check holds, 1 when one fails, 2 without a GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

GIB = 1024**3

# A child that takes ``gib`` GiB on the GPU, says so, and holds it until stdin closes.
HOLDER = """
import sys, torch
x = torch.empty(int(float(sys.argv[1]) * 2**30), dtype=torch.uint8, device="cuda")
x.fill_(1)
torch.cuda.synchronize()
print("held", flush=True)
sys.stdin.read()
"""


def hold(gib: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(gib)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if line.strip() != "held":
        proc.kill()
        raise RuntimeError(f"the holder process could not take {gib} GiB on the GPU")
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    if proc.stdin:
        proc.stdin.close()
    proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=8.0, help="what the holder process takes in check 2")
    parser.add_argument("--model", default="smollm2_135m_instruct", help="catalog model for check 4")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    from pytest_codeeval.catalog import load_catalog
    from pytest_codeeval.engines import memory
    from pytest_codeeval.engines.vllm_engine import GPU_SLACK_BYTES, VLLMEngine
    from pytest_codeeval.errors import EngineError

    nvml = memory.Nvml()
    if not nvml.available:
        print("gpu_memory_check.py: NVML sees no GPU (install nvidia-ml-py, or run on a GPU machine)", file=sys.stderr)
        return 2
    try:
        import vllm

        vllm_line = f"vllm {vllm.__version__} is installed (run gpu_proof.py for the full path)"
    except ImportError:
        vllm_line = "vllm is not installed here: the engine's load/generate path is not exercised"
    import torch

    results: dict[str, Any] = {"device": nvml.name(), "torch": torch.__version__, "vllm": vllm_line, "checks": {}}
    checks = results["checks"]
    used0, free0, total = nvml.info()
    print(f"device: {results['device']}; torch {torch.__version__}; {vllm_line}")
    print(f"[1] NVML: {used0 / GIB:.2f} GiB used, {free0 / GIB:.2f} of {total / GIB:.2f} GiB free")
    checks["nvml"] = {"ok": total > 0 and 0 <= used0 <= total, "used_gib": used0 / GIB, "total_gib": total / GIB}

    # 2. peak of another process's memory, as PeakSampler sees it during a vLLM load
    with memory.PeakSampler("gpu", nvml, baseline=used0, interval_s=0.05) as sampler:
        holder = hold(args.gib)
        time.sleep(0.5)
        release(holder)
    ok = args.gib <= sampler.peak / GIB <= args.gib + 2.0  # + the holder's CUDA context
    checks["peak"] = {"ok": ok, "held_gib": args.gib, "peak_gib": sampler.peak / GIB}
    print(f"[2] a child took {args.gib:.1f} GiB: PeakSampler saw a peak of {sampler.peak / GIB:.2f} GiB over the "
          f"baseline -> {'OK' if ok else 'WRONG'}")

    # 3. the memory comes back once that process is gone
    start = time.monotonic()
    while nvml.info()[0] - used0 > GPU_SLACK_BYTES and time.monotonic() - start < 30:
        time.sleep(0.1)
    left = nvml.info()[0] - used0
    ok = left <= GPU_SLACK_BYTES
    checks["returned"] = {"ok": ok, "left_gib": left / GIB, "seconds": time.monotonic() - start}
    print(f"[3] after it exited: {left / GIB:.2f} GiB still used over the baseline, after "
          f"{checks['returned']['seconds']:.2f} s -> {'OK' if ok else 'WRONG'}")

    # 4. the pre-load check with a fifth of the GPU taken by someone else
    catalog = load_catalog()
    model = catalog.model(args.model)
    taken = 0.20 * total / GIB
    holder = hold(taken)
    try:
        free = nvml.info()[1]
        print(f"[4] another process holds {taken:.1f} GiB; {free / GIB:.1f} GiB free")
        rows = []
        for name in ("performance", "balanced", "memory_optimized"):
            settings = catalog.engine_settings(model, catalog.preset(name))
            need = float(settings["gpu_memory_utilization"]) * total
            engine = VLLMEngine(model, settings, {})
            try:
                engine._check_gpu_before_load()
                got = "accepted"
                message = ""
            except EngineError as e:
                got = "refused"
                message = str(e)
            expected = "accepted" if need <= free else "refused"
            rows.append({"preset": name, "need_gib": need / GIB, "free_gib": free / GIB, "got": got,
                         "expected": expected, "message": message, "ok": got == expected})
            print(f"    {name:<17} asks {need / GIB:6.1f} GiB: {got:<8} (expected {expected})"
                  + (f"\n      {message}" if message else ""))
        checks["preflight"] = {"ok": all(r["ok"] for r in rows), "presets": rows}
    finally:
        release(holder)

    failed = [k for k, v in checks.items() if not v["ok"]]
    print("all checks hold" if not failed else f"FAILED: {', '.join(failed)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
