"""The pieces of --ray-address that need no cluster: the resource requests,
the store connection the dispatcher writes through, what is missing from
the store, a case's throughput over calls that ran at once, and a job's
progress and end (with a stand-in for the replicas)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import requests_for
from pytest_codeeval.cluster.connect import Node
from pytest_codeeval.cluster.dispatch import DispatchedEngine, EngineJob, missing_requests
from pytest_codeeval.cluster.pool import ClusterEngineDied, ReplicaLost, actor_options
from pytest_codeeval.engines.base import EngineDied, SamplingConfig
from pytest_codeeval.engines.cached import CachingEngine
from pytest_codeeval.engines.reference import ReferenceEngine
from pytest_codeeval.errors import CodeevalError, EngineError
from pytest_codeeval.items import Prompt
from pytest_codeeval.progress import CallProgress, reporting
from pytest_codeeval.runner import busy_seconds
from pytest_codeeval.scale_options import ScaleOptions, parse_resources
from pytest_codeeval.store import open_store


def test_resources_for_every_engine_or_per_engine_most_specific_first() -> None:
    assert parse_resources('{"GPU": 2}') == {"*": {"GPU": 2.0}}
    rules = parse_resources('{"*": {"CPU": 1}, "@memory_optimized": {"node_b": 1}, "m": {"GPU": 1}, '
                            '"m@performance": {"GPU": 4}}')
    opts = ScaleOptions(ray_address="auto", ray_resources=rules)
    assert opts.resources_for("x@balanced") == {"CPU": 1.0}
    assert opts.resources_for("x@memory_optimized") == {"node_b": 1.0}
    assert opts.resources_for("m@balanced") == {"GPU": 1.0}
    assert opts.resources_for("m@performance") == {"GPU": 4.0}
    assert ScaleOptions().resources_for("m@balanced") is None  # the cluster's default
    for bad in ("{", "[1]", '{"GPU": -1}', '{"GPU": true}', '{"a": {"GPU": "x"}}'):
        with pytest.raises(CodeevalError, match="--ray-resources"):
            parse_resources(bad)


def test_a_request_becomes_ray_actor_options() -> None:
    options = actor_options({"GPU": 2.0, "node_b": 1.0})
    assert options["num_gpus"] == 2.0 and options["num_cpus"] == 0.0  # no hidden CPU needed to place it
    assert options["resources"] == {"node_b": 1.0} and options["max_restarts"] == 0
    node = Node("id", "n", "127.0.0.1", {"GPU": 4.0, "CPU": 8.0})
    assert node.offers({"GPU": 2.0}) == 2 and node.offers({"GPU": 2.0, "big": 1.0}) == 0


def test_the_dispatchers_second_connection_keeps_the_wal_for_other_processes(tmp_path: Path) -> None:
    """A second connection opened through open_store's header check dropped this process's POSIX
    locks: a reader in another process then deleted the WAL, and every later write was lost."""
    path = tmp_path / "s.sqlite"
    store = open_store(path)
    second = store.another_connection()
    read = [sys.executable, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
            "'SELECT COUNT(*) FROM calls').fetchone()[0])", str(path)]
    assert subprocess.run(read, capture_output=True, text=True, check=True).stdout.strip() == "0"
    engine = CachingEngine(second, {"engine": "reference"}, lambda: ReferenceEngine(), kind="reference",
                           engine_key="reference@balanced")
    engine.generate(requests_for([Prompt("a", text="def f():")], SamplingConfig()))
    assert subprocess.run(read, capture_output=True, text=True, check=True).stdout.strip() == "1"
    assert (tmp_path / "s.sqlite-wal").exists()


def test_missing_requests_are_those_the_store_lacks(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.sqlite")
    engine = CachingEngine(store, {"engine": "reference"}, lambda: ReferenceEngine(), kind="reference",
                           engine_key="reference@balanced")
    requests = requests_for([Prompt(str(i), text=f"def f{i}():") for i in range(4)], SamplingConfig())
    engine.generate(requests[:2])
    assert missing_requests(engine, requests) == requests[2:]
    engine.fresh = True
    assert missing_requests(engine, requests) == requests


def test_busy_seconds_count_calls_that_ran_at_once_once() -> None:
    assert busy_seconds([(0.0, 2.0), (1.0, 2.0), (5.0, 1.0)]) == 4.0
    assert busy_seconds([(0.0, 1.0), (0.5, 0.2)]) == 1.0
    assert busy_seconds([]) == 0.0


class _Pool(ReferenceEngine):
    """Stands in for cluster/pool.py's ClusterEngine (no Ray here): one replica that answers once
    ``go`` is set, or none at all (``placeable=False``: its only node is gone)."""

    def __init__(self, placeable: bool = True) -> None:
        super().__init__()
        self.go = threading.Event()
        self.placeable = placeable
        self.lost: list[str] = [] if placeable else ["node_b: NodeDiedError"]
        self.nodes_used: list[str] = []
        self.request = {"CPU": 1.0}

    def start_replica(self, slot: int, stop: object = None) -> object:
        if not self.placeable:
            raise ReplicaLost("no live node of the Ray cluster offers {node_b: 1}", placeable=False)
        return object()

    def generate(self, requests):  # type: ignore[no-untyped-def]
        self.go.wait(60)
        return super().generate(requests)

    def retire(self, slot: int) -> None:
        pass

    def release(self) -> None:
        pass


def _job(tmp_path: Path, pool: _Pool, n: int) -> tuple[EngineJob, DispatchedEngine, list]:
    engine = DispatchedEngine(open_store(tmp_path / "s.sqlite"), {"engine": "reference"}, lambda: pool,
                              kind="reference", engine_key="reference@balanced")
    requests = requests_for([Prompt(str(i), text=f"def f{i}():") for i in range(n)], SamplingConfig())
    return EngineJob("reference@balanced", engine, pool, requests, chunk=2, replicas=1), engine, requests


def test_a_fixture_waiting_for_a_ray_job_shows_the_prompts_left_as_chunks_are_stored(tmp_path: Path) -> None:
    pool = _Pool()
    job, engine, requests = _job(tmp_path, pool, 6)
    job.start()  # the first chunk is in flight before anybody waits
    sink = CallProgress("reference@balanced", interval_s=0)

    def fixture() -> None:
        with reporting(sink):
            engine.generate(requests)

    waiting = threading.Thread(target=fixture)
    waiting.start()
    while job.sink is None:
        time.sleep(0.01)
    pool.go.set()
    waiting.join(60)
    assert (sink.total, sink.done) == (6, 6)
    assert "generation 6/6 prompts (100%)" in sink.line() and "done in" in sink.line()


def test_a_ray_job_whose_replicas_are_lost_cuts_its_cases_short(tmp_path: Path) -> None:
    """Prompts left after the replicas were lost: an EngineDied (interrupt.py marks the cases cut
    short) that is also the EngineError every case of the model reports."""
    job, _, _ = _job(tmp_path, _Pool(placeable=False), 4)
    job.start()
    with pytest.raises(ClusterEngineDied, match="4 of 4 prompts were not generated") as raised:
        job.wait()
    assert isinstance(raised.value, EngineDied) and isinstance(raised.value, EngineError)
