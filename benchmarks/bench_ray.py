"""The Ray path against a local engine: the same prompts, the same model, one run.

    python benchmarks/bench_ray.py [--samples 5] [--rounds 2] [--preset balanced] [--chunk 256]

The prompts are those of ``pytest -m cpu_smoke --samples N`` (the embedded
SmolLM2 on vLLM CPU, every offline dataset with its own token budget), built
as bench_batching.py builds them.  Two engines are loaded first (neither load
is timed): a local ``VLLMEngine`` in this process, and one replica of the
suite's Ray engine (cluster/pool.py: a Ray actor building the same engine
from its recipe) on a one-node Ray cluster started here.  Per round, in
alternating order, each arm generates every prompt into a fresh store:

* local: the caching engine over the local engine, one call for all prompts
  (what the ``codeeval_engine`` fixture does without Ray);
* ray: the caching engine over the Ray replica, the prompts in chunks of
  ``--chunk`` sent to the actor in turn, each stored when it returns (what a
  replica's thread does in cluster/dispatch.py): pickling the requests, the
  actor call, the answers back.

Greedy decoding, so both make the same tokens.  The last line reads
``ray/local throughput ratio: R`` (total tokens over total wall; target >= 0.9).

Ray must not bind this machine's outside address: as root, the script
re-runs itself inside a private network (and PID) namespace that has only
the loopback device (../shared/ENVIRONMENT.md).  ``--address`` uses a
cluster you started instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
IN_NAMESPACE = "CODEEVAL_BENCH_IN_NAMESPACE"


def _outside_interfaces() -> list[str]:
    return [n for n in os.listdir("/sys/class/net") if n != "lo"] if os.path.isdir("/sys/class/net") else []


def _rerun_in_namespace() -> None:
    """exec this script again inside a network namespace that has only lo (and its own PIDs)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        sys.exit("bench_ray.py starts a Ray cluster, which must not bind this machine's outside address: run it "
                 "as root (it enters a private network namespace itself) or give --address of a cluster.")
    script = 'ip link set lo up && exec "$@"'
    os.environ[IN_NAMESPACE] = "1"
    os.execvp("unshare", ["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh",
                          sys.executable, *sys.argv])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5, help="items per cpu_smoke dataset (as --samples)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--chunk", type=int, default=None, help="requests per actor call (as --ray-chunk)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (default: start one here)")
    args = parser.parse_args()
    if args.address is None and not os.environ.get(IN_NAMESPACE) and _outside_interfaces():
        _rerun_in_namespace()

    import ray

    from bench_batching import cpu_smoke_requests
    from pytest_codeeval import defaults
    from pytest_codeeval.catalog import load_catalog
    from pytest_codeeval.cluster.connect import Cluster
    from pytest_codeeval.cluster.pool import ClusterEngine
    from pytest_codeeval.engines.cached import CachingEngine
    from pytest_codeeval.engines.recipe import EngineRecipe
    from pytest_codeeval.engines.vllm_engine import VLLMEngine
    from pytest_codeeval.store import open_store

    chunk = args.chunk or defaults.RAY_CHUNK
    model, by_dataset = cpu_smoke_requests(args.samples)
    requests = [r for rs in by_dataset.values() for r in rs]
    catalog = load_catalog()
    settings = catalog.engine_settings(model, catalog.preset(args.preset))
    options = {"seed": defaults.SEED}
    key = f"{model.name}@{args.preset}"

    if args.address is None:
        # A cluster nothing outside this namespace reaches: no token auth, whose default writes
        # ~/.ray/auth_token and so turns it on for every later `ray start` on the machine.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING", namespace="pytest_codeeval")
    cluster = Cluster.connect(args.address or "auto")
    env = {k: v for k, v in os.environ.items() if k.startswith(("CODEEVAL_", "HF_"))}
    remote = ClusterEngine(key, EngineRecipe("vllm", model, settings, options), cluster, {"CPU": 1.0}, env)
    start = time.perf_counter()
    replica = remote.start_replica(0)  # binds the replica to this thread, as a job's slot thread
    assert replica is not None
    print(f"ray replica on {replica.node} ({cluster.describe()}) loaded in {time.perf_counter() - start:.1f} s "
          f"(engine {replica.stats.load_seconds:.1f} s)", flush=True)
    local = VLLMEngine(model, settings, options)
    local.load()
    print(f"{len(requests)} prompts ({args.samples} per cpu_smoke dataset), model {model.name}, preset "
          f"{args.preset}, greedy, ray chunk {chunk}; local engine loaded in {local.stats.load_seconds:.1f} s",
          flush=True)

    engine_s = {"local": 0.0, "ray": 0.0}  # the engine's own time inside generate(), per arm

    def arm(name: str, engine: Any, chunks: list[list[Any]]) -> tuple[float, int]:
        with tempfile.TemporaryDirectory() as tmp:
            cached = CachingEngine(open_store(Path(tmp) / "s.sqlite"), {"bench": time.time()}, lambda: engine,
                                   kind="vllm", engine_key=key)
            t0 = time.perf_counter()
            rows = []
            for part in chunks:
                rows += cached.generate(part)
                engine_s[name] += float(engine.last_call.get("wall_s") or 0.0)
            wall = time.perf_counter() - t0
        return wall, sum(x.completion_tokens for row in rows for x in row)

    arms = {"local": lambda: arm("local", local, [requests]),
            "ray": lambda: arm("ray", remote, [requests[i:i + chunk] for i in range(0, len(requests), chunk)])}
    totals = {name: [0.0, 0] for name in arms}
    for i in range(args.rounds):
        order = list(arms) if i % 2 == 0 else list(reversed(list(arms)))
        for name in order:
            wall, tokens = arms[name]()
            totals[name][0] += wall
            totals[name][1] += tokens
            print(f"round {i + 1}: {name:<6} {wall:7.1f} s  {tokens:6d} tokens  {tokens / wall:7.1f} tokens/s",
                  flush=True)
    local.close()
    remote.release()
    ray.shutdown()
    speed = {name: t / w for name, (w, t) in totals.items()}
    print(f"tokens: local {totals['local'][1]}, ray {totals['ray'][1]} (greedy: the same)")
    # Where the Ray arm's time goes: the engine itself (in its actor) or the way there and back.
    for name, (w, _) in totals.items():
        print(f"{name}: engine {engine_s[name]:.1f} s of {w:.1f} s wall ({w - engine_s[name]:.1f} s outside the engine)")
    print(f"ray/local throughput ratio: {speed['ray'] / speed['local']:.2f}")


if __name__ == "__main__":
    main()
