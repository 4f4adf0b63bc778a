"""What in-call progress costs generation: the same prompts on one loaded engine, with and without it.

    python benchmarks/bench_progress.py [--prompts 32] [--max-new-tokens 128] [--rounds 3]
                                        [--preset balanced] [--model smollm2_135m_instruct]

One ``VLLMEngine`` is loaded once; each round runs the same HumanEval prompts
(chat template, greedy) twice, once plain and once inside
``progress.reporting(CallProgress(...))``, alternating which goes first so
that a drift of the machine's speed hits both sides alike. The progress side
takes the busiest path there is: a terminal line rewritten every 0.5 s
(written to /dev/null), each refresh peeking at the tokens of the running
requests, and a run-log line every second (into a temporary run log).

It prints each call's wall time and tokens/s, the ratio with/without per
round, and their median; the target is within 2% (ratio >= 0.98). Greedy
decoding makes both sides generate the same tokens, which it checks.

On a shared machine the wall-clock ratio swings by more than the effect it
looks for, so it also prints two costs that load blurs much less: the CPU
time the progress thread used, as a share of the call's wall time, and the
CPU time of this whole process (the vLLM front end: scheduling output,
detokenizing, the step counting and the progress thread) with and without.
The model itself runs in the engine core processes, whose work is the same
either way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_throughput import _options, _requests, _setup  # noqa: E402  (the same prompts and engine settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--model", default="smollm2_135m_instruct")
    args = parser.parse_args()

    from pytest_codeeval.engines.base import SamplingConfig
    from pytest_codeeval.engines.vllm_engine import VLLMEngine
    from pytest_codeeval.progress import CallProgress, reporting
    from pytest_codeeval.runlog import start_run_log

    model, settings, items, prompts = _setup(args)
    log = start_run_log(Path(tempfile.mkdtemp(prefix="bench-progress-")), "bench")
    engine = VLLMEngine(model, settings, _options())
    engine.load()
    print(f"load {engine.stats.load_seconds:.1f} s; {len(prompts)} prompts, {args.max_new_tokens} new tokens, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    requests = _requests(prompts, items, SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens, n=1))
    devnull = open(os.devnull, "w")

    thread_share: list[float] = []
    me = psutil.Process()

    def call(with_progress: bool) -> tuple[float, int, float]:
        cpu0 = sum(me.cpu_times()[:2])
        if with_progress:
            sink = CallProgress("bench", devnull, tty=True, interval_s=1.0, refresh_s=0.5)
            with reporting(sink):
                engine.generate(requests)
            assert sink.done == len(prompts), "the sink missed finished prompts"
            thread_share.append(sink.thread_cpu_s / engine.last_call["wall_s"])
        else:
            engine.generate(requests)
        return engine.last_call["wall_s"], engine.last_call["completion_tokens"], sum(me.cpu_times()[:2]) - cpu0

    try:
        engine.generate(_requests(prompts[:2], items[:2], SamplingConfig(temperature=0.0, max_new_tokens=8)))
        ratios, cpu_ratios = [], []
        for r in range(args.rounds):
            order = [False, True] if r % 2 == 0 else [True, False]
            got = {}
            for with_progress in order:
                wall, tokens, cpu = call(with_progress)
                got[with_progress] = (wall, tokens, cpu)
                print(f"  round {r + 1} {'with   ' if with_progress else 'without'} progress: {wall:7.2f} s, "
                      f"{tokens} tokens, {tokens / wall:6.1f} tokens/s, front-end CPU {cpu:6.2f} s", flush=True)
            assert got[True][1] == got[False][1], "greedy runs generated different token counts"
            ratio = (got[True][1] / got[True][0]) / (got[False][1] / got[False][0])
            ratios.append(ratio)
            cpu_ratios.append(got[True][2] / got[False][2])
            print(f"  round {r + 1}: tokens/s with / without = {ratio:.4f}; front-end CPU with / without = "
                  f"{cpu_ratios[-1]:.4f}", flush=True)
        print(f"median ratio with/without progress over {args.rounds} rounds: {statistics.median(ratios):.4f} "
              f"(rounds: {', '.join(f'{x:.4f}' for x in ratios)}; target >= 0.98); "
              f"load average now {os.getloadavg()[0]:.1f}; progress lines logged to {log}")
        print(f"progress thread CPU time / call wall time: median {100 * statistics.median(thread_share):.3f}% "
              f"(max {100 * max(thread_share):.3f}%)")
        print(f"front-end CPU time with / without progress: median {statistics.median(cpu_ratios):.4f} "
              f"(rounds: {', '.join(f'{x:.4f}' for x in cpu_ratios)})")
    finally:
        devnull.close()
        engine.close()


if __name__ == "__main__":
    main()
