"""Kill-and-resume: a run SIGKILLed at random points, then rerun, gives the
same scores as a clean run and asks the engine for no stored item twice.

The engine calls are counted by engines that wrap the reference and replay
engines, registered by a conftest in the pytester project through the
registry (test-only: the product code has no counter); a wrapped scorer
slows scoring down too, so that kills land in every phase."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import SHARED_DATASETS, needs_shared

COUNTING_CONFTEST = '''
import json, os, time
from pytest_codeeval import registry
from pytest_codeeval.engines.reference import ReferenceEngine
from pytest_codeeval.engines.replay import ReplayEngine
from pytest_codeeval.scoring.gsm8k import Gsm8kScorer

LOG = os.environ["CODEEVAL_TEST_CALLS"]
DELAY = float(os.environ.get("CODEEVAL_TEST_DELAY", "0"))


def counted(cls):
    class Counted(cls):
        def generate(self, requests):
            with open(LOG, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), "items": [r.item.id for r in requests]}) + "\\n")
            time.sleep(DELAY)
            return super().generate(requests)

    return Counted


class SlowGsm8k(Gsm8kScorer):
    def score(self, items, answers, ctx):
        time.sleep(DELAY)
        return super().score(items, answers, ctx)


registry.ENGINES.register("reference", counted(ReferenceEngine))
registry.ENGINES.register("replay", counted(ReplayEngine))
registry.SCORERS.register("gsm8k", SlowGsm8k)
'''

ARGS = ["--engine", "reference", "--datasets", "gsm8k", "--samples", "12", "--preset", "balanced,performance"]


def _env(calls: Path, delay: float) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CODEEVAL_TEST_CALLS=str(calls), CODEEVAL_TEST_DELAY=str(delay), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", CODEEVAL_DATA_DIR=str(SHARED_DATASETS))
    return env


def _cmd(report_dir: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--report-dir={report_dir}", *extra]


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _stored(report_dir: Path) -> set[str]:
    db = report_dir / "codeeval.sqlite"
    if not db.exists():
        return set()
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute("SELECT item_id FROM generations")}
    except sqlite3.OperationalError:  # killed before the schema was committed
        return set()
    finally:
        conn.close()


def _scores(report_dir: Path) -> dict[str, tuple]:
    comp = next((report_dir / "comparisons").glob("*_comparison.json"))
    data = json.loads(comp.read_text())
    out = {}
    for case in data["cases"]:
        rows = [json.loads(x) for x in (report_dir / case["sample_log"]).read_text().splitlines()]
        out[case["case_id"]] = (case["score"], case["metrics"],
                                sorted((r["task_id"], r["sample"], r["verdict"], r["extracted"]) for r in rows))
    return out


def _run(cwd: Path, report_dir: Path, env: dict[str, str], extra: list[str], timeout: float = 180) -> int:
    return subprocess.run(_cmd(report_dir, extra), cwd=cwd, env=env, capture_output=True, timeout=timeout).returncode


def _kill_and_resume(suite: pytest.Pytester, extra: list[str], kills: int, seed: int) -> None:
    suite.makeconftest(COUNTING_CONFTEST)
    cwd = suite.path
    clean_dir, dir_ = cwd / "clean", cwd / "resumed"
    clean_log, log = cwd / "clean_calls.jsonl", cwd / "calls.jsonl"
    delay = 1.5

    t0 = time.monotonic()
    assert _run(cwd, clean_dir, _env(clean_log, delay), extra) == 0
    full = time.monotonic() - t0
    clean = _scores(clean_dir)

    rng = random.Random(seed)
    env = _env(log, delay)
    for k in range(kills):
        before = _stored(dir_)
        n_calls = len(_calls(log))
        proc = subprocess.Popen(_cmd(dir_, extra), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        at = rng.uniform(1.0, full)
        try:
            proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        asked = [i for c in _calls(log)[n_calls:] for i in c["items"]]
        # Nothing already stored went back to the engine.
        assert not set(asked) & before, f"kill {k} (seed {seed}, at {at:.1f}s): regenerated {set(asked) & before}"
        assert len(asked) == len(set(asked)), f"one run asked twice: {asked}"

    before = _stored(dir_)
    n_calls = len(_calls(log))
    assert _run(cwd, dir_, env, extra) == 0
    asked = [i for c in _calls(log)[n_calls:] for i in c["items"]]
    assert not set(asked) & before
    assert _scores(dir_) == clean, "the resumed run's scores differ from the clean run's"
    # Over all the killed runs and the final one, every item was generated at
    # most once per store key: each item id appears once per engine config.
    all_asked = [i for c in _calls(log) for i in c["items"]]
    assert len(all_asked) == len(set(all_asked))
    # A rerun of a complete run asks the engine for nothing and loads no model.
    n_calls = len(_calls(log))
    assert _run(cwd, dir_, env, extra) == 0
    assert _calls(log)[n_calls:] == []
    assert _scores(dir_) == clean


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("seed", [11])
def test_sigkill_at_random_points_then_resume_reference_engine(suite: pytest.Pytester, seed: int) -> None:
    _kill_and_resume(suite, ARGS, kills=3, seed=seed)


@needs_shared
@pytest.mark.slow
def test_sigkill_then_resume_replay_engine(suite: pytest.Pytester, tmp_path: Path) -> None:
    completions = tmp_path / "samples.jsonl"
    # Half right, half wrong: the replayed verdicts must survive the kills too.
    rows = [{"task_id": f"gsm8k/{i}", "completion": "The answer is\n#### 0" if i % 2 else "#### 18"}
            for i in range(12)]
    completions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _kill_and_resume(suite, [f"--completions={completions}", "--datasets", "gsm8k", "--samples", "12"],
                     kills=1, seed=5)


@needs_shared
def test_fresh_regenerates_everything(suite: pytest.Pytester) -> None:
    suite.makeconftest(COUNTING_CONFTEST)
    log = suite.path / "calls.jsonl"
    env = _env(log, 0.0)
    args = ["--engine", "reference", "--datasets", "gsm8k", "--samples", "4"]
    rd = suite.path / "r"
    assert _run(suite.path, rd, env, args) == 0
    assert _run(suite.path, rd, env, args) == 0
    assert len(_calls(log)) == 1
    assert _run(suite.path, rd, env, [*args, "--fresh"]) == 0
    assert [len(c["items"]) for c in _calls(log)] == [4, 4]
