"""The result store and its wrappers: content keys, engine calls, the caching engine and the
stored scorer (resume), durability, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

import pytest

from pytest_codeeval.engines.base import Engine, Request, SamplingConfig
from pytest_codeeval.engines.cached import CachingEngine
from pytest_codeeval.engines.reference import ReferenceEngine
from pytest_codeeval.items import Generation, Item, Prompt, Verdict
from pytest_codeeval.scoring.base import ScoreContext, Scorer
from pytest_codeeval.scoring.stored import StoredScorer
from pytest_codeeval.store import StoreError, open_store, prompt_hash

ITEMS = [Item(id=f"t/{i}", task_type="math", prompt=f"q{i}", reference=f"#### {i}") for i in range(6)]
SAMPLING = SamplingConfig(max_new_tokens=16)
REQUESTS = [Request(Prompt(item_id=it.id, text=it.prompt), it, SAMPLING) for it in ITEMS]


class CountingEngine(ReferenceEngine):
    """The reference engine, remembering which items it was asked for."""

    def __init__(self) -> None:
        super().__init__(chat=False)
        self.asked: list[str] = []

    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        self.asked += [r.item.id for r in requests]
        return super().generate(requests)


def _cached(path: Path, engine: Engine | None = None, identity: dict | None = None, fresh: bool = False,
            loads: list[str] | None = None) -> CachingEngine:
    inner = engine or CountingEngine()

    def open_engine() -> Engine:
        if loads is not None:
            loads.append("load")
        inner.load()
        return inner

    return CachingEngine(open_store(path), identity or {"model": "m"}, open_engine, kind="reference",
                         engine_key="m@balanced", fresh=fresh)


def test_generations_round_trip_and_only_missing_items_are_generated(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    engine = CountingEngine()
    cached = _cached(db, engine)
    gens = cached.generate(REQUESTS[:3])
    assert engine.asked == ["t/0", "t/1", "t/2"]
    assert cached.last_figures["generated"] == 3 and cached.last_figures["reused"] == 0
    # A new process (new connection) sees them; only the three new items go to the engine, in one call.
    engine2 = CountingEngine()
    cached2 = _cached(db, engine2)
    gens2 = cached2.generate(REQUESTS)
    assert engine2.asked == ["t/3", "t/4", "t/5"]
    assert (cached2.last_figures["reused"], cached2.last_figures["generated"]) == (3, 3)
    assert [g[0].text for g in gens2[:3]] == [g[0].text for g in gens]
    assert [g[0].key for g in gens2[:3]] == [g[0].key for g in gens]
    assert open_store(db).counts() == {"generations": 6, "verdicts": 0}


def test_each_call_is_stored_with_its_figures_and_model_free_engines_report_no_speed(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    cached = _cached(db)
    gens = cached.generate(REQUESTS)
    (call_id,) = {g.call_id for row in gens for g in row}
    call = open_store(db).get_calls([call_id])[call_id]
    assert (call.requests, call.samples, call.model) == (6, 6, "m@balanced")
    assert call.wall_s >= 0 and call.tokens_per_s is None  # words over microseconds are no speed
    assert call_id in cached.calls_made
    assert _cached(db).generate(REQUESTS)[0][0].call_id == call_id  # reused: the call that made it


def test_key_changes_with_prompt_sampling_and_model(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _cached(db).generate(REQUESTS[:1])
    e = CountingEngine()
    _cached(db, e, identity={"model": "other"}).generate(REQUESTS[:1])
    assert e.asked == ["t/0"]
    e = CountingEngine()
    _cached(db, e).generate([Request(REQUESTS[0].prompt, ITEMS[0], SamplingConfig(temperature=0.5))])
    assert e.asked == ["t/0"]
    e = CountingEngine()
    changed = Prompt(item_id="t/0", text="q0 (new template)")
    _cached(db, e).generate([Request(changed, ITEMS[0], SAMPLING)])
    assert e.asked == ["t/0"]
    assert prompt_hash(changed) != prompt_hash(REQUESTS[0].prompt)


def test_one_call_mixes_requests_with_different_budgets(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    e = CountingEngine()
    mixed = [REQUESTS[0], Request(REQUESTS[1].prompt, ITEMS[1], SamplingConfig(max_new_tokens=99))]
    _cached(db, e).generate(mixed)
    assert e.asked == ["t/0", "t/1"]
    e2 = CountingEngine()
    _cached(db, e2).generate(mixed)
    assert e2.asked == []


def test_fresh_regenerates_and_replaces(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _cached(db).generate(REQUESTS)
    e = CountingEngine()
    _cached(db, e, fresh=True).generate(REQUESTS)
    assert len(e.asked) == 6
    assert open_store(db).counts()["generations"] == 6


class CountingScorer(Scorer):
    name = "s"
    version = "1"

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.calls: list[int] = []

    def score(self, items, answers, ctx):
        self.calls.append(len(items))
        return [[Verdict(it.id, j, True, "passed", scores={"a": 1.0}) for j, _ in enumerate(row)]
                for it, row in zip(items, answers)]


def test_verdicts_are_keyed_by_scorer_version(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    gens = _cached(db).generate(REQUESTS)
    ctx = ScoreContext(chat=False)
    first = CountingScorer()
    v1 = StoredScorer(first, open_store(db)).score(ITEMS, gens, ctx)
    again = CountingScorer()
    stored = StoredScorer(again, open_store(db))
    v2 = stored.score(ITEMS, gens, ctx)
    assert first.calls == [6] and again.calls == [] and stored.last_figures == {"verdicts_reused": 6, "scored": 0}
    assert [v[0].to_dict() for v in v2] == [v[0].to_dict() for v in v1]
    newer = CountingScorer(version="2")
    StoredScorer(newer, open_store(db)).score(ITEMS, gens, ctx)
    assert newer.calls == [6]


def test_the_model_loads_only_when_something_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    _cached(db).generate(REQUESTS)
    loads: list[str] = []
    cached = _cached(db, loads=loads)
    cached.generate(REQUESTS)
    assert loads == [] and cached.describe()["loaded"] is False
    extra = Item(id="t/new", task_type="math", prompt="n", reference="#### 9")
    cached.generate([Request(Prompt(item_id="t/new", text="n"), extra, SAMPLING)])
    assert loads == ["load"]
    cached.close()


def test_a_failed_load_is_not_retried(tmp_path: Path) -> None:
    attempts: list[int] = []

    def broken() -> Engine:
        attempts.append(1)
        raise RuntimeError("no such model")

    cached = CachingEngine(open_store(tmp_path / "s.sqlite"), {"model": "m"}, broken, kind="vllm", engine_key="m@b")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="no such model"):
            cached.generate(REQUESTS[:1])
    assert attempts == [1]


def test_store_is_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    open_store(db)
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_corrupted_store_is_a_usage_error_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "s.sqlite"
    db.write_bytes(content)
    with pytest.raises(StoreError, match="(not a SQLite database|corrupted|unusable).*(Move it away|--store)") as e:
        open_store(db)
    assert isinstance(e.value, pytest.UsageError)
    assert db.read_bytes() == content


def test_foreign_sqlite_file_is_refused_and_kept(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
    conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="did not create.*invoices"):
        open_store(db)
    assert db.read_bytes() == before
    assert sqlite3.connect(db).execute("SELECT amount FROM invoices").fetchone() == (9.5,)


def test_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    open_store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(db)
