"""--ray-address on a real two-node Ray cluster on this machine.

Both nodes run on 127.0.0.1 inside a private network namespace that has only
the loopback device (../shared/ENVIRONMENT.md: without it Ray binds the
machine's outside address, which tests must never use), and a private PID
namespace, so `ray stop` and the teardown reach only this cluster's
processes.  The pytest run that drives the cluster joins the network
namespace (nsenter).  Needs root (unshare --net), nsenter and Ray; skipped
otherwise.

Each node gets one CPU and a custom resource naming it (node_a, node_b), and
its own core for vLLM's threads (VLLM_CPU_OMP_THREADS_BIND), as two
one-core machines would have.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from helpers import REPO

PORT = 46379  # inside the private namespace: nothing else listens there
ADDRESS = f"127.0.0.1:{PORT}"
PIN = '--ray-resources={"@balanced": {"node_a": 1}, "@memory_optimized": {"node_b": 1}}'


def _can_run_clusters() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a private network namespace (unshare --net)"
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        return "needs unshare, nsenter and ip (util-linux, iproute2)"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "needs Ray: pip install 'pytest-codeeval[ray]'"
    return None


pytestmark = pytest.mark.skipif(_can_run_clusters() is not None, reason=str(_can_run_clusters()))


class LocalCluster:
    """Two Ray nodes (node_a: the head, node_b) in their own network and PID namespaces."""

    def __init__(self, workdir: Path) -> None:
        # Short: Ray's socket paths under it must stay within the 107 bytes of a unix socket name.
        self.temp = Path(tempfile.mkdtemp(prefix="cr", dir="/tmp"))
        self.workdir = workdir
        self.log = workdir / "cluster.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # The nodes' actors import this checkout, and learn of a dead node within seconds.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env.update(RAY_health_check_period_ms="1000", RAY_health_check_timeout_ms="1000",
                   RAY_health_check_failure_threshold="3", RAY_health_check_initial_delay_ms="1000",
                   # Nothing outside the namespace reaches it, and token auth would read (or make)
                   # ~/.ray/auth_token, which every Ray on this machine shares.
                   RAY_AUTH_MODE="disabled")
        return env

    def start(self, timeout: float = 300.0) -> "LocalCluster":
        ray = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
        common = "--node-ip-address=127.0.0.1 --num-cpus=1 --disable-usage-stats"
        ready = self.temp / "ready"
        script = f"""
set -e
ip link set lo up
VLLM_CPU_OMP_THREADS_BIND=0 {ray} start --head --port={PORT} --node-name=node_a {common} \\
    --resources='{{"node_a": 1}}' --include-dashboard=false --temp-dir={self.temp}/ray
VLLM_CPU_OMP_THREADS_BIND=1 {ray} start --address={ADDRESS} --node-name=node_b {common} \\
    --resources='{{"node_b": 1}}'
touch {ready}
cat >/dev/null  # until stop() closes stdin, or this test process dies and the pipe with it
{ray} stop --force
"""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
                                         env=self.env(), stdin=subprocess.PIPE, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the Ray cluster did not start: {self.log.read_text()[-3000:]}")
            time.sleep(1)
        return self

    def command(self, *args: str) -> list[str]:
        """``args`` run inside the cluster's network namespace."""
        assert self.proc is not None
        return ["nsenter", f"--target={self.proc.pid}", "--net", "--", *args]

    def pytest(self, cwd: Path, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(sys.executable, "-m", "pytest", *args), cwd=cwd, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def popen_pytest(self, cwd: Path, *args: str) -> subprocess.Popen[str]:
        """A run in the background; its output goes to ``cwd/run.log`` (a pipe nobody reads could fill)."""
        with (cwd / "run.log").open("w") as log:
            return subprocess.Popen(self.command(sys.executable, "-m", "pytest", *args), cwd=cwd, env=self.env(),
                                    stdout=log, stderr=subprocess.STDOUT, text=True)

    def _processes(self) -> list[object]:
        import psutil

        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill_node(self, name: str) -> int:
        """SIGKILL the raylet of one node (as if its machine died); returns its pid."""
        for p in self._processes():
            try:
                cmd = " ".join(p.cmdline())  # type: ignore[attr-defined]
            except Exception:
                continue
            if "raylet" in p.name() and f"{name}," in cmd:  # type: ignore[attr-defined]
                os.kill(p.pid, signal.SIGKILL)  # type: ignore[attr-defined]
                return int(p.pid)  # type: ignore[attr-defined]
        raise AssertionError(f"no raylet of {name} among the cluster's processes")

    def stop(self) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left in the PID namespace ends with its first process.
        for p in self._processes()[:1]:
            os.kill(p.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        shutil.rmtree(self.temp, ignore_errors=True)
        self.proc = None


def _finish(run: subprocess.Popen[str], cwd: Path, timeout: float = 1800) -> str:
    run.wait(timeout=timeout)
    return (cwd / "run.log").read_text()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    c.stop()


def _comparison(report_dir: Path, stem: str = "cpu_smoke_balanced+memory_optimized_comparison") -> dict:
    return json.loads((report_dir / "comparisons" / f"{stem}.json").read_text())


def _calls(store: Path) -> list[tuple[str, int, dict]]:
    rows = sqlite3.connect(store).execute("SELECT model, requests, conditions FROM calls").fetchall()
    return [(m, n, json.loads(c)) for m, n, c in rows]


# -- cheap: the reference engine (CI) -----------------------------------------------


def test_two_engines_run_on_the_nodes_they_ask_for_and_a_rerun_generates_nothing(
        cluster: LocalCluster, suite: pytest.Pytester) -> None:
    args = ("-q", "-p", "no:cacheprovider", "-m", "cpu_smoke", "--engine=reference", "--samples=2",
            "--preset=balanced,memory_optimized", f"--ray-address={ADDRESS}", PIN, "--ray-chunk=5")
    done = cluster.pytest(suite.path, *args)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    cases = _comparison(suite.path / "reports")["cases"]
    assert len(cases) == 12 and all(c["status"] == "passed" and c["score"] == 1.0 for c in cases)
    assert {c["performance"]["node"] for c in cases if c["preset"] == "balanced"} == {"node_a"}
    assert {c["performance"]["node"] for c in cases if c["preset"] == "memory_optimized"} == {"node_b"}
    assert all(c["performance"]["generated"] == 2 for c in cases)
    assert cases[0]["engine"]["ray"]["resources"] == {"node_a": 1.0}
    # Ray starts workers at nice 15; the engine's actor runs at 0 (root may raise its priority).
    assert cases[0]["engine"]["ray"]["niceness"] == 0
    # 12 prompts per engine in chunks of 5: each chunk stored as its own call, with its node.
    calls = _calls(suite.path / "reports" / "codeeval.sqlite")
    assert sorted((m, n) for m, n, _ in calls) == sorted([(f"reference@{p}", n) for p in ("balanced", "memory_optimized")
                                                          for n in (5, 5, 2)])
    assert {c["node"] for m, _, c in calls if m.endswith("@memory_optimized")} == {"node_b"}
    assert "codeeval ray" in done.stdout and "node_a {CPU: 1, node_a: 1}" in done.stdout
    # The usual reports.
    assert (suite.path / "reports" / "html" / "cpu_smoke_balanced+memory_optimized_comparison.html").is_file()
    perf = json.loads((suite.path / "reports" / "performance" / "reference@memory_optimized.json").read_text())
    assert {c["node"] for c in perf["cases"]} == {"node_b"}

    again = cluster.pytest(suite.path, *args)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "reference@balanced: nothing to generate (stored)" in again.stdout
    cases = _comparison(suite.path / "reports")["cases"]
    assert all(c["performance"]["generated"] == 0 and c["performance"]["generations_reused"] == 2 for c in cases)
    assert {c["performance"]["node"] for c in cases if c["preset"] == "memory_optimized"} == {"node_b"}


def test_a_cluster_without_room_for_a_model_is_a_usage_error_before_anything_loads(
        cluster: LocalCluster, suite: pytest.Pytester) -> None:
    base = ("-p", "no:cacheprovider", "--engine=reference", "--datasets=humaneval", "--samples=1",
            f"--ray-address={ADDRESS}")
    gpus = cluster.pytest(suite.path, *base, '--ray-resources={"GPU": 1}')
    assert gpus.returncode == pytest.ExitCode.USAGE_ERROR, gpus.stdout + gpus.stderr
    assert "reference@balanced needs 1 replica(s) of {GPU: 1} but the Ray cluster at 127.0.0.1:46379 has room for 0" \
           in gpus.stderr
    assert "node_a {CPU: 1, node_a: 1}; node_b {CPU: 1, node_b: 1}" in gpus.stderr
    # Three replicas of one CPU each on two one-CPU nodes.
    replicas = cluster.pytest(suite.path, *base, "--data-parallel=3")
    assert replicas.returncode == pytest.ExitCode.USAGE_ERROR
    assert "needs 3 replica(s) of {CPU: 1} but the Ray cluster at 127.0.0.1:46379 has room for 2" in replicas.stderr
    assert not (suite.path / "reports" / "codeeval.sqlite").exists()  # nothing written, nothing loaded


def test_two_replicas_of_one_model_take_its_chunks_from_one_queue(
        cluster: LocalCluster, suite: pytest.Pytester) -> None:
    """--data-parallel 2: two actors (one CPU each: one per node) take chunks as they are free. The
    reference engine answers in microseconds, so which replica takes how many is not fixed."""
    done = cluster.pytest(suite.path, "-q", "-p", "no:cacheprovider", "--engine=reference",
                          "--datasets=humaneval,reasoning_sample", "--samples=10", "--data-parallel=2",
                          "--ray-chunk=2", f"--ray-address={ADDRESS}")
    assert done.returncode == 0, done.stdout[-4000:]
    cases = _comparison(suite.path / "reports", "custom_balanced_comparison")["cases"]
    assert all(c["score"] == 1.0 for c in cases)
    calls = _calls(suite.path / "reports" / "codeeval.sqlite")
    assert sum(n for _, n, _ in calls) == 20 and len(calls) == 10  # every prompt once, in chunks of 2
    assert {c["node"] for _, _, c in calls} <= {"node_a", "node_b"}
    assert cases[0]["engine"]["ray"]["replicas"] == 2


def test_an_address_nobody_listens_on_is_a_usage_error(suite: pytest.Pytester) -> None:
    """Connection refused on loopback: no cluster (and no namespace) needed."""
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine=reference", "--datasets=humaneval",
                                        "--samples=1", "--ray-address=127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cannot reach the Ray cluster at --ray-address=127.0.0.1:9 *ray start --head*"])
    bad = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine=reference", "--datasets=humaneval",
                                     "--ray-address=127.0.0.1:1", '--ray-resources={"GPU": "one"}')
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: --ray-resources: the resources of '[*]' must map resource names to numbers*"])


# -- slow: the real engine -------------------------------------------------------------

# Both presets of SmolLM2, one prompt per chunk: a node killed mid-run has stored some and not all.
NODE_LOSS_RUN = ("-q", "-p", "no:cacheprovider", "-m", "cpu_smoke", "--datasets=humaneval", "--samples=6",
                 "--max-new-tokens=64", "--preset=balanced,memory_optimized", f"--ray-address={ADDRESS}",
                 "--ray-chunk=1")


@pytest.mark.slow
def test_two_smollm2_presets_run_on_different_nodes(cluster: LocalCluster, suite: pytest.Pytester) -> None:
    """The issue's command: two vLLM engines (two presets of SmolLM2) at once, one per node."""
    done = cluster.pytest(suite.path, "-q", "-p", "no:cacheprovider", "-m", "cpu_smoke", "--datasets=humaneval",
                          "--samples=2", "--preset=balanced,memory_optimized", f"--ray-address={ADDRESS}",
                          timeout=1800)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    cases = _comparison(suite.path / "reports")["cases"]
    assert len(cases) == 2 and all(c["status"] == "passed" and c["engine"]["kind"] == "vllm" for c in cases)
    nodes = [c["performance"]["node"] for c in cases]
    assert sorted(nodes) == ["node_a", "node_b"], nodes
    for c in cases:
        p = c["performance"]
        assert p["completion_tokens"] > 0 and p["tokens_per_s"] > 0 and p["load_s"] > 0 and p["peak_memory_bytes"]
    assert (suite.path / "reports" / "markdown" / "cpu_smoke_balanced+memory_optimized_comparison.md").is_file()


@pytest.mark.slow
def test_a_node_that_dies_mid_run_loses_nothing(tmp_path: Path, suite: pytest.Pytester) -> None:
    """node_b's raylet is killed once its engine stored a chunk: the chunk in flight goes back to the
    queue, a new replica on node_a generates the rest, every case completes, and the stored
    answers made on node_b are in the report."""
    cluster = LocalCluster(tmp_path).start()
    try:
        store = suite.path / "reports" / "codeeval.sqlite"
        args = NODE_LOSS_RUN
        run = cluster.popen_pytest(suite.path, *args)
        on_b = _wait_for_a_call_on(store, "node_b", run)
        killed_at = time.time()
        cluster.kill_node("node_b")
        out = _finish(run, suite.path)
        assert run.returncode == 0, out[-5000:]
        _print_calls(store, killed_at)
        cases = _comparison(suite.path / "reports")["cases"]
        assert all(c["status"] == "passed" and c["n_items"] == 6 for c in cases)
        moved = next(c for c in cases if c["engine"]["model"] + "@" + c["preset"] == on_b)
        assert moved["performance"]["node"] == "node_a, node_b"
        assert moved["engine"]["ray"]["lost"] and moved["engine"]["ray"]["nodes"] == ["node_b", "node_a"]
        assert all(c["performance"]["generated"] == 6 for c in cases)  # nothing lost, nothing made twice
        calls = _calls(store)
        assert sum(n for m, n, _ in calls if m == on_b) == 6
        assert "lost node_b" in out

        again = cluster.pytest(suite.path, *args)
        assert again.returncode == 0, again.stdout[-4000:]
        assert all(c["performance"]["generated"] == 0 for c in _comparison(suite.path / "reports")["cases"])
    finally:
        cluster.stop()


@pytest.mark.slow
def test_an_engine_pinned_to_a_node_that_dies_fails_cleanly_and_a_rerun_makes_only_the_rest(
        tmp_path: Path, suite: pytest.Pytester) -> None:
    """memory_optimized may only run on node_b: when node_b dies, no live node can hold it, so its case
    fails with the reason and the count missing; what node_b made stays stored, and a rerun that
    lets it run anywhere generates only the rest."""
    cluster = LocalCluster(tmp_path).start()
    try:
        store = suite.path / "reports" / "codeeval.sqlite"
        args = NODE_LOSS_RUN
        run = cluster.popen_pytest(suite.path, *args, PIN)
        _wait_for_a_call_on(store, "node_b", run)
        cluster.kill_node("node_b")
        out = _finish(run, suite.path)
        assert run.returncode == pytest.ExitCode.TESTS_FAILED, out[-5000:]
        by_preset = {c["preset"]: c for c in _comparison(suite.path / "reports")["cases"]}
        assert by_preset["balanced"]["status"] == "passed"
        failed = by_preset["memory_optimized"]
        assert failed["status"] == "error", failed
        made = sum(n for m, n, _ in _calls(store) if m.endswith("@memory_optimized"))
        assert 1 <= made < 6
        assert f"{6 - made} of 6 prompts were not generated" in failed["error"]
        assert "rerun to generate only the missing ones" in failed["error"]
        # Its engine died, as a local one would (interrupt.py); the whole reason (the error keeps 500 characters).
        assert "no live node of the Ray cluster offers {node_b: 1}" in failed["cut_short"]
        print(f"node_b died with {made} of 6 memory_optimized prompts stored: {failed['error']}")

        again = cluster.pytest(suite.path, *args, '--ray-resources={"CPU": 1}', timeout=1800)
        assert again.returncode == 0, again.stdout[-4000:]
        by_preset = {c["preset"]: c for c in _comparison(suite.path / "reports")["cases"]}
        perf = by_preset["memory_optimized"]["performance"]
        assert (perf["generated"], perf["generations_reused"]) == (6 - made, made)
        assert by_preset["balanced"]["performance"]["generated"] == 0
    finally:
        cluster.stop()


@pytest.mark.slow
def test_a_controller_killed_mid_run_keeps_what_came_back(cluster: LocalCluster, suite: pytest.Pytester) -> None:
    """SIGKILL of the pytest process once answers are stored: the rerun generates only the rest."""
    store = suite.path / "reports" / "codeeval.sqlite"
    args = ("-q", "-p", "no:cacheprovider", "-m", "cpu_smoke", "--datasets=humaneval", "--samples=6",
            "--max-new-tokens=64", "--preset=balanced", f"--ray-address={ADDRESS}", "--ray-chunk=1")
    run = cluster.popen_pytest(suite.path, *args)
    _wait_for_a_call_on(store, None, run)
    run.kill()
    run.wait(timeout=60)
    kept = sum(n for _, n, _ in _calls(store))
    print(f"controller killed with {kept} of 6 prompts stored")
    assert 1 <= kept < 6
    done = cluster.pytest(suite.path, *args, timeout=1800)
    assert done.returncode == 0, done.stdout[-5000:]
    (case,) = _comparison(suite.path / "reports", "cpu_smoke_balanced_comparison")["cases"]
    assert case["performance"]["generations_reused"] >= kept
    assert case["performance"]["generated"] + case["performance"]["generations_reused"] == 6
    assert sum(n for _, n, _ in _calls(store)) == 6  # every prompt generated once over both runs
    print(f"rerun: generated {case['performance']['generated']}, reused {case['performance']['generations_reused']}")


def _print_calls(store: Path, since: float) -> None:
    """The calls' timeline, for the record (pytest -rP shows it)."""
    rows = sqlite3.connect(store).execute("SELECT model, started_at, wall_s, conditions FROM calls "
                                          "ORDER BY started_at").fetchall()
    for model, started, wall, cond in rows:
        print(f"{model:<40} {started - since:+8.1f} s  {wall:6.1f} s  on {json.loads(cond).get('node')}")


def _wait_for_a_call_on(store: Path, node: str | None, run: subprocess.Popen[str], timeout: float = 1500) -> str:
    """The engine key of the first stored call (made on ``node``, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise AssertionError("the run ended first: " + (store.parent.parent / "run.log").read_text()[-4000:])
        if store.exists():
            try:
                for model, _, cond in _calls(store):
                    if node is None or cond.get("node") == node:
                        return model
            except sqlite3.OperationalError:  # the run is creating its tables
                pass
        time.sleep(0.5)
    run.kill()
    raise AssertionError(f"no call stored{f' on {node}' if node else ''} within {timeout} s")
