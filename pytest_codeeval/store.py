"""The result store: every generation, engine call and verdict, durable across crashes.

SQLite only: what a key means and when to look one up belongs to the caching
engine (engines/cached.py) and the stored scorer (scoring/stored.py), which
wrap an engine and a scorer the way lm-evaluation-harness's CachingLM wraps
a model.

One SQLite file (reports/codeeval.sqlite by default) in WAL mode, so xdist
workers can write to it at once and a reader never blocks a writer.

- A generation is keyed by its content (``generation_key``): what decides
  the engine's output, the prompt's hash, the sampling, the item id and the
  sample index.  Two runs that would ask the engine the same question share
  the answer; change any of these and it is a new key.  It keeps the engine
  call that made it (``calls``), so a resumed case reports the throughput
  measured when its samples were made, not a load that happened later.
- A verdict is keyed by (generation key, scorer name, scorer version): a new
  scorer version re-scores stored generations without loading a model.
- Every write is committed when it is made (autocommit + one transaction per
  batch), so a SIGKILL loses at most the batch in flight.

A file that is not SQLite, or a SQLite file some other program owns, is a
usage error: the store never rewrites or deletes a file it did not create.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .defaults import STORE_FILENAME
from .errors import CodeevalError
from .items import Generation, Prompt, Verdict
from .textsafe import safe_text

APP_ID = "pytest-codeeval"
# 2: engine calls are stored (calls table, generations.call_id)
STORE_SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    item_id TEXT NOT NULL,
    sample INTEGER NOT NULL,
    n_samples INTEGER NOT NULL,
    prompt_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    seconds REAL NOT NULL,
    call_id TEXT,
    run_id TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    engine TEXT NOT NULL,
    run_id TEXT,
    started_at REAL NOT NULL,
    wall_s REAL NOT NULL,
    requests INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    tokens_per_s REAL,
    conditions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
    generation_key TEXT NOT NULL,
    scorer TEXT NOT NULL,
    scorer_version TEXT NOT NULL,
    passed INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    detail TEXT NOT NULL,
    scores TEXT NOT NULL,
    extracted TEXT,
    run_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (generation_key, scorer, scorer_version)
);
"""


class StoreError(CodeevalError):
    """The store file cannot be used; nothing in it was changed."""


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def prompt_hash(prompt: Prompt) -> str:
    """Hash of everything the engine sees of a prompt (messages or text, and stops)."""
    return _sha({"messages": prompt.messages, "text": prompt.text, "stop": list(prompt.stop)})[:32]


def generation_key(config: dict[str, Any], p_hash: str, item_id: str, sample: int) -> str:
    """``config``: what decides the output besides the prompt (engine identity and sampling)."""
    return _sha({"config": config, "prompt": p_hash, "item": item_id, "sample": sample})[:40]


@dataclass
class StoredGeneration:
    generation: Generation  # with its key, call id and the engine seconds it cost
    n_samples: int  # how many samples the engine gave its item in that call


@dataclass
class CallRecord:
    """One engine call: its wall time and tokens, under which conditions."""

    call_id: str
    model: str  # the engine key (model@preset)
    engine: str  # the engine kind
    started_at: float
    wall_s: float
    requests: int
    samples: int
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float | None  # None: the engine measures no speed (reference, replay)
    conditions: dict[str, Any]  # device, peak memory, ... as the engine reported them
    run_id: str = ""


class ResultStore:
    """Open with :func:`open_store`.  Safe to share between xdist workers
    (each opens its own connection; WAL + busy timeout serialise writers)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, run_id: str = "") -> None:
        self.path = path
        self._conn = conn
        self.run_id = run_id

    # -- generations -----------------------------------------------------
    def get_generations(self, keys: Sequence[str]) -> dict[str, StoredGeneration]:
        found: dict[str, StoredGeneration] = {}
        for chunk in _chunks(list(keys), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT key, item_id, sample, text, prompt_tokens, completion_tokens, finish_reason, seconds, "
                f"n_samples, call_id FROM generations WHERE key IN ({marks})", chunk,
            ).fetchall()
            for key, item_id, sample, text, pt, ct, fr, sec, n, call_id in rows:
                found[key] = StoredGeneration(Generation(item_id, sample, text, pt, ct, fr, key, call_id or "", sec), n)
        return found

    def put_generations(self, rows: Iterable[tuple[str, str, Generation, int, dict[str, Any]]]) -> int:
        """rows: (model, prompt hash, generation with its key/call/seconds, samples of its item, key config);
        one transaction."""
        now = time.time()
        data = [
            (g.key, model, g.item_id, g.sample, n, ph, json.dumps(cfg, sort_keys=True, default=str),
             safe_text(g.text), g.prompt_tokens, g.completion_tokens, g.finish_reason, g.seconds, g.call_id,
             self.run_id, now)
            for model, ph, g, n, cfg in rows
        ]
        with self._conn:  # BEGIN ... COMMIT
            self._conn.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", data,
            )
        return len(data)

    # -- engine calls ----------------------------------------------------
    def put_call(self, call: CallRecord) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO calls VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (call.call_id, call.model, call.engine, call.run_id or self.run_id, call.started_at, call.wall_s,
                 call.requests, call.samples, call.prompt_tokens, call.completion_tokens, call.tokens_per_s,
                 json.dumps(call.conditions, sort_keys=True, default=str)),
            )

    def get_calls(self, call_ids: Iterable[str]) -> dict[str, CallRecord]:
        found: dict[str, CallRecord] = {}
        for chunk in _chunks(sorted(set(call_ids) - {""}), 500):
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(f"SELECT * FROM calls WHERE call_id IN ({marks})", chunk):
                (cid, model, engine, run_id, started, wall, requests, samples, pt, ct, tps, cond) = row
                found[cid] = CallRecord(cid, model, engine, started, wall, requests, samples, pt, ct, tps,
                                        json.loads(cond), run_id or "")
        return found

    # -- verdicts --------------------------------------------------------
    def get_verdicts(self, keys: Sequence[str], scorer: str, version: str) -> dict[str, Verdict]:
        found: dict[str, Verdict] = {}
        for chunk in _chunks(list(keys), 500):
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT v.generation_key, g.item_id, g.sample, v.passed, v.verdict, v.detail, v.scores, v.extracted "
                "FROM verdicts v JOIN generations g ON g.key = v.generation_key "
                f"WHERE v.scorer = ? AND v.scorer_version = ? AND v.generation_key IN ({marks})",
                [scorer, version, *chunk],
            ).fetchall()
            for key, item_id, sample, passed, kind, detail, scores, extracted in rows:
                found[key] = Verdict(item_id, sample, bool(passed), kind, detail, json.loads(scores), extracted)
        return found

    def put_verdicts(self, rows: Iterable[tuple[str, Verdict]], scorer: str, version: str) -> int:
        now = time.time()
        data = [
            (key, scorer, version, int(v.passed), v.verdict, safe_text(v.detail or ""), json.dumps(v.scores),
             safe_text(v.extracted) if v.extracted is not None else None, self.run_id, now)
            for key, v in rows
        ]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?,?,?,?,?)", data)
        return len(data)

    # -- inspection ------------------------------------------------------
    def counts(self) -> dict[str, int]:
        g = self._conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
        v = self._conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
        return {"generations": g, "verdicts": v}

    def has_model(self, model: str) -> bool:
        """Whether any generation of this model is stored (a resume may need no load)."""
        row = self._conn.execute("SELECT 1 FROM generations WHERE model = ? LIMIT 1", (model,)).fetchone()
        return row is not None

    def close(self) -> None:
        self._conn.close()

    def another_connection(self) -> "ResultStore":
        """A second connection to this store for another thread of the same process (the Ray
        dispatcher's writers).  Not through :func:`open_store`: its header check opens and closes
        the file outside SQLite, and closing any descriptor of a file drops every POSIX lock this
        process holds on it, so another process's connection then thinks it is the last one,
        checkpoints and deletes the WAL under this one, and what is written next is lost (seen
        here: a Ray run's generations vanished while a test read the store)."""
        conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        return ResultStore(self.path, conn, self.run_id)


def _chunks(seq: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


def open_store(path: Path, run_id: str = "") -> ResultStore:
    """Open (or create) the store at ``path``; a usage error for any file
    that is not a pytest-codeeval store, which is left untouched."""
    path = Path(path)
    existed = path.exists() and path.stat().st_size > 0
    if existed:
        _check_header(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(
            f"result store {path} cannot be opened ({e}). Make its folder writable or choose "
            "another report dir with --report-dir (or --store PATH)."
        ) from None
    try:
        if existed:
            _check_existing(conn, path)
        else:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                for stmt in _SCHEMA.strip().split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (APP_ID,))
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(STORE_SCHEMA_VERSION),))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against process death
    except sqlite3.OperationalError as e:
        conn.close()
        if "readonly" in str(e) or "unable to open" in str(e):
            raise StoreError(
                f"result store {path} cannot be written ({e}). Make it writable or choose another "
                "report dir with --report-dir (or --store PATH)."
            ) from None
        raise StoreError(f"result store {path} is unusable ({e}). Move it away; nothing in it was changed.") from None
    except StoreError:
        conn.close()
        raise
    except sqlite3.DatabaseError as e:
        conn.close()
        raise StoreError(
            f"result store {path} is corrupted ({e}). Move it away (it was not changed) and rerun, "
            "or point --store at another file."
        ) from None
    return ResultStore(path, conn, run_id)


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StoreError(f"result store {path} cannot be read ({e}). Fix its permissions or choose --store PATH.") from None
    if head != b"SQLite format 3\x00":
        raise StoreError(
            f"result store {path} is not a SQLite database (corrupted, or another program's file). "
            "Move it away (it was not changed) and rerun, or point --store at another file."
        )


def _check_existing(conn: sqlite3.Connection, path: Path) -> None:
    ok = conn.execute("PRAGMA quick_check").fetchone()
    if not ok or ok[0] != "ok":
        raise StoreError(
            f"result store {path} is corrupted (integrity check: {ok[0] if ok else 'no answer'}). "
            "Move it away (it was not changed) and rerun, or point --store at another file."
        )
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    app = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key='app'").fetchone()
        app = row[0] if row else None
    if app != APP_ID or not {"generations", "verdicts"} <= tables:
        raise StoreError(
            f"result store {path} is a SQLite file that pytest-codeeval did not create "
            f"(tables: {', '.join(sorted(tables)) or 'none'}). It was not changed. "
            "Point --store at another file or move this one away."
        )
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if version is None or int(version[0]) != STORE_SCHEMA_VERSION:
        raise StoreError(
            f"result store {path} has store schema version {version[0] if version else '?'}, this "
            f"pytest-codeeval reads version {STORE_SCHEMA_VERSION}. Point --store at another file."
        )


__all__ = ["ResultStore", "StoreError", "StoredGeneration", "CallRecord", "open_store", "prompt_hash",
           "generation_key", "STORE_FILENAME"]
