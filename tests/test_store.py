"""The result store: content keys, durability, resume helpers, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

import pytest

from pytest_codeeval.engines.base import Engine, SamplingConfig
from pytest_codeeval.engines.reference import ReferenceEngine
from pytest_codeeval.items import Generation, Item, Prompt, Verdict
from pytest_codeeval.store import (
    CaseCache, DeferredEngine, StoreError, generate_missing, open_store, prompt_hash, score_missing,
)

ITEMS = [Item(id=f"t/{i}", task_type="math", prompt=f"q{i}", reference=f"#### {i}") for i in range(6)]
PROMPTS = [Prompt(item_id=it.id, text=it.prompt) for it in ITEMS]
SAMPLING = SamplingConfig(max_new_tokens=16)


class CountingEngine(ReferenceEngine):
    """The reference engine, remembering which items it was asked for."""

    def __init__(self) -> None:
        super().__init__(chat=False)
        self.asked: list[str] = []

    def generate(self, prompts: Sequence[Prompt], items: Sequence[Item], sampling: SamplingConfig) -> list[list[Generation]]:
        self.asked += [it.id for it in items]
        return super().generate(prompts, items, sampling)


def _cache(path: Path, config: dict | None = None, fresh: bool = False) -> CaseCache:
    return CaseCache(open_store(path), config or {"model": "m", "sampling": SAMPLING.to_dict()}, "m", fresh)


def _call(fn):  # the runner's timer: a plain call
    return fn()


def test_generations_round_trip_and_only_missing_items_are_generated(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    engine = CountingEngine()
    cache = _cache(db)
    gens, keys, fig = generate_missing(cache, engine, PROMPTS[:3], ITEMS[:3], SAMPLING, _call)
    assert engine.asked == ["t/0", "t/1", "t/2"] and fig["generated"] == 3 and fig["reused"] == 0
    # A new process (new connection) sees them; only the three new items go to the engine, in one call.
    engine2 = CountingEngine()
    gens2, keys2, fig2 = generate_missing(_cache(db), engine2, PROMPTS, ITEMS, SAMPLING, _call)
    assert engine2.asked == ["t/3", "t/4", "t/5"]
    assert (fig2["reused"], fig2["generated"]) == (3, 3)
    assert [g[0].text for g in gens2[:3]] == [g[0].text for g in gens]
    assert keys2[:3] == keys
    assert open_store(db).counts() == {"generations": 6, "verdicts": 0}


def test_key_changes_with_prompt_sampling_and_model(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    generate_missing(_cache(db), CountingEngine(), PROMPTS[:1], ITEMS[:1], SAMPLING, _call)
    for config in ({"model": "other", "sampling": SAMPLING.to_dict()},
                   {"model": "m", "sampling": SamplingConfig(temperature=0.5).to_dict()}):
        e = CountingEngine()
        generate_missing(_cache(db, config), e, PROMPTS[:1], ITEMS[:1], SAMPLING, _call)
        assert e.asked == ["t/0"], config
    e = CountingEngine()
    changed = [Prompt(item_id="t/0", text="q0 (new template)")]
    generate_missing(_cache(db), e, changed, ITEMS[:1], SAMPLING, _call)
    assert e.asked == ["t/0"]
    assert prompt_hash(changed[0]) != prompt_hash(PROMPTS[0])


def test_fresh_regenerates_and_replaces(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    generate_missing(_cache(db), CountingEngine(), PROMPTS, ITEMS, SAMPLING, _call)
    e = CountingEngine()
    generate_missing(_cache(db, fresh=True), e, PROMPTS, ITEMS, SAMPLING, _call)
    assert len(e.asked) == 6
    assert open_store(db).counts()["generations"] == 6


def test_verdicts_are_keyed_by_scorer_version(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    cache = _cache(db)
    gens, keys, _ = generate_missing(cache, CountingEngine(), PROMPTS, ITEMS, SAMPLING, _call)
    calls: list[int] = []

    def score(items, generations):
        calls.append(len(items))
        return [[Verdict(it.id, g.sample, True, "passed", scores={"a": 1.0}) for g in row]
                for it, row in zip(items, generations)]

    v1, f1 = score_missing(cache, ITEMS, gens, keys, "s", "1", score)
    v2, f2 = score_missing(_cache(db), ITEMS, gens, keys, "s", "1", score)
    assert calls == [6] and f2 == {"verdicts_reused": 6, "scored": 0}
    assert [v[0].to_dict() for v in v2] == [v[0].to_dict() for v in v1]
    score_missing(_cache(db), ITEMS, gens, keys, "s", "2", score)
    assert calls == [6, 6]


def test_deferred_engine_loads_only_when_something_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    generate_missing(_cache(db), CountingEngine(), PROMPTS, ITEMS, SAMPLING, _call)
    loads: list[str] = []

    def factory() -> Engine:
        loads.append("load")
        e = CountingEngine()
        e.load()
        return e

    deferred = DeferredEngine(factory, "reference", "m")
    generate_missing(_cache(db), deferred, PROMPTS, ITEMS, SAMPLING, _call)
    assert loads == [] and deferred.describe()["loaded"] is False
    extra = [Item(id="t/new", task_type="math", prompt="n", reference="#### 9")]
    generate_missing(_cache(db), deferred, [Prompt(item_id="t/new", text="n")], extra, SAMPLING, _call)
    assert loads == ["load"]
    deferred.close()


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
