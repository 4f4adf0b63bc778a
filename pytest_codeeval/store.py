"""The result store: every generation and verdict, durable across crashes.

One SQLite file (reports/codeeval.sqlite by default) in WAL mode, so xdist
workers can write to it at once and a reader never blocks a writer.

- A generation is keyed by its content: the model (and revision), the engine
  settings that change outputs, the prompt's hash, the sampling parameters,
  the item id and the sample index.  Two runs that would ask the engine the
  same question share the answer; change any of these and it is a new key.
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
from typing import Any, Callable, Iterable, Sequence

from .engines.base import Engine, EngineStats, SamplingConfig
from .errors import CodeevalError
from .items import Generation, Item, Prompt, Verdict

APP_ID = "pytest-codeeval"
STORE_SCHEMA_VERSION = 1
STORE_FILENAME = "codeeval.sqlite"

# Engine settings that change what a model writes (the others only change
# speed or memory: batch width, memory fraction, CUDA graphs).
OUTPUT_SETTINGS = ("dtype", "quantization", "kv_cache_dtype", "max_model_len", "revision")

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
    run_id TEXT,
    created_at REAL NOT NULL
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


def generation_config(model: dict[str, Any], settings: dict[str, Any], sampling: SamplingConfig) -> dict[str, Any]:
    """The part of a generation key shared by every prompt of a case."""
    return {
        "model": model,
        "engine": {k: settings[k] for k in OUTPUT_SETTINGS if k in settings},
        "sampling": sampling.to_dict(),
    }


def generation_key(config: dict[str, Any], p_hash: str, item_id: str, sample: int) -> str:
    return _sha({"config": config, "prompt": p_hash, "item": item_id, "sample": sample})[:40]


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:32]


def generation_identity(options: Any, catalog: Any, case: Any) -> dict[str, Any]:
    """What decides an engine's output besides the prompt and the sampling:
    the engine kind, the model with its revision and weights source, the
    output-changing engine settings, and for replay the completions file."""
    ident: dict[str, Any] = {"engine": options.engine, "model": case.model}
    if options.engine == "replay":
        ident["completions_sha256"] = file_sha(options.completions)
    elif options.engine != "reference":
        model = catalog.model(case.model)
        settings = catalog.engine_settings(model, catalog.preset(case.preset))
        # The preset is part of the key although most of its settings do not
        # change outputs: presets are compared on throughput, which needs
        # each preset to generate for itself.
        ident.update(hf_id=model.hf_id, revision=model.revision, dtype=model.dtype, source=model.source,
                     path=model.path, preset=case.preset,
                     settings={k: settings[k] for k in OUTPUT_SETTINGS if k in settings})
        if options.engine == "server":
            ident["server_model"] = options.server_model or model.hf_id
    return ident


@dataclass
class StoredGeneration:
    generation: Generation
    seconds: float  # the engine time this sample cost when it was made
    n_samples: int  # how many samples the engine gave its item in that batch


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
                "SELECT key, item_id, sample, text, prompt_tokens, completion_tokens, finish_reason, seconds, n_samples "
                f"FROM generations WHERE key IN ({marks})", chunk,
            ).fetchall()
            for key, item_id, sample, text, pt, ct, fr, sec, n in rows:
                found[key] = StoredGeneration(Generation(item_id, sample, text, pt, ct, fr), sec, n)
        return found

    def put_generations(self, rows: Iterable[tuple[str, str, str, Generation, int, float]], config: dict[str, Any]) -> int:
        """rows: (key, model, prompt_hash, generation, samples of its item, seconds); one transaction."""
        now = time.time()
        cfg = json.dumps(config, sort_keys=True, default=str)
        data = [
            (key, model, g.item_id, g.sample, n, ph, cfg, g.text, g.prompt_tokens, g.completion_tokens,
             g.finish_reason, seconds, self.run_id, now)
            for key, model, ph, g, n, seconds in rows
        ]
        with self._conn:  # BEGIN ... COMMIT
            self._conn.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", data,
            )
        return len(data)

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
            (key, scorer, version, int(v.passed), v.verdict, v.detail or "", json.dumps(v.scores), v.extracted,
             self.run_id, now)
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


class DeferredEngine(Engine):
    """Wraps an engine factory and loads the model only when a generation is
    missing from the store: re-scoring stored generations loads no model."""

    def __init__(self, factory: Callable[[], Engine], kind: str, model_name: str,
                 on_load: Callable[[Engine], None] | None = None) -> None:
        super().__init__(model_name)
        self.kind = kind
        self._factory = factory
        self._inner: Engine | None = None
        self._on_load = on_load
        self._load_error: BaseException | None = None

    @property
    def inner(self) -> Engine:
        if self._load_error is not None:
            # Load once: a model that failed does not cost every case another try.
            raise RuntimeError(f"model {self.model_name} failed to load earlier: {self._load_error}") from self._load_error
        if self._inner is None:
            try:
                self._inner = self._factory()  # the factory loads (and times) the model
            except BaseException as e:
                self._load_error = e
                raise
            self.stats = self._inner.stats
            self._loaded = True
            if self._on_load is not None:
                self._on_load(self._inner)
        return self._inner

    def generate(self, prompts: Sequence[Prompt], items: Sequence[Item], sampling: SamplingConfig) -> list[list[Generation]]:
        return self.inner.generate(prompts, items, sampling)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
        self._loaded = False

    def describe(self) -> dict[str, Any]:
        if self._inner is not None:
            return self._inner.describe()
        return {"kind": self.kind, "model": self.model_name, "loaded": False}


# -- resume: what the runner calls --------------------------------------------


@dataclass
class CaseCache:
    """A case's view of the store: its generation config and model label."""

    store: ResultStore
    config: dict[str, Any]
    model: str
    fresh: bool = False  # --fresh: look nothing up, replace what is stored

    def keys_for(self, prompt: Prompt, item_id: str, n: int) -> list[str]:
        ph = prompt_hash(prompt)
        return [generation_key(self.config, ph, item_id, j) for j in range(n)]


def generate_missing(
    cache: CaseCache,
    engine: Engine,
    prompts: Sequence[Prompt],
    items: Sequence[Item],
    sampling: SamplingConfig,
    call: Callable[[Callable[[], list[list[Generation]]]], list[list[Generation]]],
    on_generated: Callable[[int, float], None] | None = None,
) -> tuple[list[list[Generation]], list[list[str]], dict[str, float]]:
    """Stored generations for every item that has all its samples, one
    batched engine call (through ``call``) for the rest, stored at once.

    Returns (generations, keys, figures) where figures has engine_s (the
    engine time of every sample, stored ones included), new_s, reused and
    generated (sample counts)."""
    first = [cache.keys_for(p, it.id, 1)[0] for p, it in zip(prompts, items)]
    stored = {} if cache.fresh else cache.store.get_generations(first)
    # Items whose first sample is stored may have more (replay files, n > 1).
    more: list[str] = []
    for p, it, k in zip(prompts, items, first):
        if k in stored and stored[k].n_samples > 1:
            more += cache.keys_for(p, it.id, stored[k].n_samples)[1:]
    if more:
        stored.update(cache.store.get_generations(more))

    result: list[list[Generation] | None] = []
    keys: list[list[str]] = []
    missing: list[int] = []
    engine_s = 0.0
    reused = 0
    for i, (p, it, k) in enumerate(zip(prompts, items, first)):
        row_keys = cache.keys_for(p, it.id, stored[k].n_samples) if k in stored else [k]
        if all(rk in stored for rk in row_keys):
            result.append([stored[rk].generation for rk in row_keys])
            engine_s += sum(stored[rk].seconds for rk in row_keys)
            reused += len(row_keys)
        else:
            result.append(None)
            missing.append(i)
        keys.append(row_keys)

    new_s = 0.0
    generated = 0
    if missing:
        sub_prompts = [prompts[i] for i in missing]
        sub_items = [items[i] for i in missing]
        t0 = time.perf_counter()
        fresh_rows = call(lambda: engine.generate(sub_prompts, sub_items, sampling))
        new_s = time.perf_counter() - t0
        if len(fresh_rows) != len(sub_items):
            raise RuntimeError(f"engine returned {len(fresh_rows)} result lists for {len(sub_items)} prompts")
        total = sum(len(r) for r in fresh_rows) or 1
        per_sample = new_s / total
        to_store = []
        for i, row in zip(missing, fresh_rows):
            row_keys = cache.keys_for(prompts[i], items[i].id, len(row))
            keys[i] = row_keys
            result[i] = row
            for key, g in zip(row_keys, row):
                to_store.append((key, cache.model, prompt_hash(prompts[i]), g, len(row), per_sample))
        generated = cache.store.put_generations(to_store, cache.config)
        engine_s += new_s
        if on_generated is not None:
            on_generated(generated, new_s)
    figures = {"engine_s": engine_s, "new_s": new_s, "reused": reused, "generated": generated}
    return [r or [] for r in result], keys, figures


def score_missing(
    cache: CaseCache,
    items: Sequence[Item],
    generations: Sequence[Sequence[Generation]],
    keys: Sequence[Sequence[str]],
    scorer_name: str,
    scorer_version: str,
    score: Callable[[Sequence[Item], Sequence[Sequence[Generation]]], list[list[Verdict]]],
) -> tuple[list[list[Verdict]], dict[str, int]]:
    """Stored verdicts of this scorer version where there are, ``score`` for
    the items that lack any; the new verdicts are stored at once."""
    flat = [k for row in keys for k in row]
    stored = {} if cache.fresh else cache.store.get_verdicts(flat, scorer_name, scorer_version)
    out: list[list[Verdict] | None] = []
    missing: list[int] = []
    for i, row in enumerate(keys):
        if row and all(k in stored for k in row):
            out.append([stored[k] for k in row])
        else:
            out.append(None)
            missing.append(i)
    if missing:
        fresh = score([items[i] for i in missing], [generations[i] for i in missing])
        rows = []
        for i, vs in zip(missing, fresh):
            out[i] = vs
            rows += list(zip(keys[i], vs))
        cache.store.put_verdicts(rows, scorer_name, scorer_version)
    n_scored = sum(len(keys[i]) for i in missing)
    return [v or [] for v in out], {"verdicts_reused": len(flat) - n_scored, "scored": n_scored}


__all__ = [
    "ResultStore", "StoreError", "open_store", "prompt_hash", "generation_config", "generation_key",
    "DeferredEngine", "StoredGeneration", "CaseCache", "generate_missing", "score_missing", "generation_identity", "file_sha", "OUTPUT_SETTINGS", "STORE_FILENAME", "EngineStats",
]
