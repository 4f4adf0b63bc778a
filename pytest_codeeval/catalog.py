"""The catalog: models, datasets, categories and presets, from TOML.

The suite ships its catalog as TOML files in ``pytest_codeeval/catalog/``.
Users extend or override entries from ``[tool.codeeval]`` in their
pyproject.toml and from a file given with ``--catalog FILE`` (applied last).
An override of an existing entry may name only the fields it changes; a new
entry must be complete.  Every field is checked here, so a typo in a user's
catalog is a usage error that names the entry, the field and the fix, before
anything is loaded.
"""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import CatalogError

CATALOG_DIR = Path(__file__).parent / "catalog"
SECTIONS = ("models", "datasets", "categories", "presets")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hf_id: str
    kind: str  # "chat" | "base"
    family: str
    dtype: str
    max_model_len: int
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1  # replicas on disjoint GPUs (--data-parallel overrides)
    reasoning: bool = False
    revision: str = ""
    source: str = "hf"  # "hf" | "smollm2_package" | "path"
    path: str = ""  # a local weights folder, for source = "path"
    system_prompt: str = ""
    base_urls: tuple[str, ...] = ()  # OpenAI-compatible servers of this model (--engine server; replicas)
    engine: dict[str, Any] = field(default_factory=dict)  # preset overrides
    # Reasoning models (generation.py): whether the chat template reads
    # `enable_thinking` (Qwen3 does), what `--thinking model` picks, and the
    # thinking budget given on top of each dataset's answer budget.
    thinking_switch: bool = False
    thinking_default: bool = True
    max_thinking_tokens: int = 0  # 0: defaults.MAX_THINKING_TOKENS for a model that thinks
    # `--sampling model`: the model card's settings (temperature, top_p, top_k,
    # min_p, repetition_penalty, presence_penalty); what is not pinned comes
    # from the model's generation_config.json.  `sampling_thinking_off` applies
    # with thinking switched off (Qwen3 recommends other values there).
    sampling: dict[str, Any] = field(default_factory=dict)
    sampling_thinking_off: dict[str, Any] = field(default_factory=dict)
    # Any vLLM engine argument, passed to LLM(...) as is (vllm_args.py checks the names).
    vllm: dict[str, Any] = field(default_factory=dict)
    # A LoRA adapter of another catalog model: `base` names it, `adapter` is a
    # local folder or a hub id.  The entry inherits the base's fields.
    base: str = ""
    adapter: str = ""
    adapter_revision: str = ""

    @property
    def chat(self) -> bool:
        return self.kind == "chat"

    @property
    def engine_model(self) -> str:
        """The catalog model whose engine serves this one (itself, or an adapter's base)."""
        return self.base or self.name


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task_type: str
    loader: str
    scorer: str
    description: str = ""
    offline: bool = False
    hf_id: str = ""
    hf_config: str = ""
    hf_split: str = ""
    hf_files: tuple[str, ...] = ()
    local_path: str = ""
    max_new_tokens: int = 512
    source_url: str = ""
    n_items: int = 0  # items of the published split (0: unknown); what a dry run says it will download
    # Options of the dataset's scorer (scoring/options.py), e.g. { bfcl_strict_format = false }
    scorer_options: dict[str, Any] = field(default_factory=dict)
    revision: str = ""  # the hub commit (or tag) to load: passed to load_dataset / hf_hub_download


@dataclass(frozen=True)
class CategorySpec:
    name: str
    description: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]


@dataclass(frozen=True)
class PresetSpec:
    name: str
    description: str
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    enforce_eager: bool
    kv_cache_dtype: str
    enable_prefix_caching: bool
    swap_space_gib: float
    cpu_kvcache_space_gib: float
    cpu_enforce_eager: bool
    hf_batch_size: int = 16  # the transformers engine (--engine hf): prompts per generate() call

    def settings(self) -> dict[str, Any]:
        """The engine settings only (no name/description)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "description")}


_SPEC_TYPES = {"models": ModelSpec, "datasets": DatasetSpec, "categories": CategorySpec, "presets": PresetSpec}
PRESET_SETTING_NAMES = tuple(
    f.name for f in fields(PresetSpec) if f.name not in ("name", "description")
)


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelSpec]
    datasets: dict[str, DatasetSpec]
    categories: dict[str, CategorySpec]
    presets: dict[str, PresetSpec]
    sources: tuple[str, ...] = ()

    def model(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise CatalogError(_unknown("model", name, self.models, "--models")) from None

    def dataset(self, name: str) -> DatasetSpec:
        try:
            return self.datasets[name]
        except KeyError:
            raise CatalogError(_unknown("dataset", name, self.datasets, "--datasets")) from None

    def category(self, name: str) -> CategorySpec:
        try:
            return self.categories[name]
        except KeyError:
            raise CatalogError(_unknown("category", name, self.categories, "-m")) from None

    def preset(self, name: str) -> PresetSpec:
        try:
            return self.presets[name]
        except KeyError:
            raise CatalogError(_unknown("preset", name, self.presets, "--preset")) from None

    def engine_settings(self, model: ModelSpec, preset: PresetSpec) -> dict[str, Any]:
        """The preset's settings with the model's overrides applied.

        A preset's max_model_len is a cap (never above the model's own
        context); a model's [engine] max_model_len is taken as it is."""
        settings = preset.settings()
        if settings["max_model_len"] and model.max_model_len:
            settings["max_model_len"] = min(settings["max_model_len"], model.max_model_len)
        settings.update(model.engine)
        if not settings["max_model_len"]:
            settings["max_model_len"] = model.max_model_len
        return settings


_SECTION_OF = {"model": "models", "dataset": "datasets", "category": "categories", "preset": "presets"}


def _unknown(kind: str, name: str, known: dict[str, Any], option: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(sorted(known))}. "
        f"Fix {option}, or add a [{_SECTION_OF[kind]}.{name}] entry "
        "to [tool.codeeval] in pyproject.toml or to a --catalog file."
    )


def load_catalog(pyproject: Path | None = None, extra: Path | None = None) -> Catalog:
    """Read the shipped catalog, then apply pyproject's [tool.codeeval], then ``extra``."""
    raw: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in SECTIONS}
    sources: list[str] = []
    for path in sorted(CATALOG_DIR.glob("*.toml")):
        _merge(raw, _read_toml(path), str(path), shipped=True)
        sources.append(str(path))
    if pyproject is not None and pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("codeeval")
        if table:
            _merge(raw, table, f"{pyproject} [tool.codeeval]", shipped=False)
            sources.append(f"{pyproject}:[tool.codeeval]")
    if extra is not None:
        if not extra.is_file():
            raise CatalogError(f"--catalog {extra}: no such file. Give the path of a TOML catalog file.")
        _merge(raw, _read_toml(extra), str(extra), shipped=False)
        sources.append(str(extra))
    return _build(raw, tuple(sources))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise CatalogError(f"{path} is not valid TOML: {e}. Fix the file's syntax.") from None


def _merge(raw: dict[str, dict[str, dict[str, Any]]], data: dict[str, Any], origin: str, shipped: bool) -> None:
    for section, entries in data.items():
        if section not in SECTIONS:
            raise CatalogError(
                f"{origin}: unknown catalog section [{section}]. Use one of: {', '.join(SECTIONS)}."
            )
        if not isinstance(entries, dict):
            raise CatalogError(f"{origin}: [{section}] must be a table of named entries.")
        for name, entry in entries.items():
            if not isinstance(entry, dict):
                raise CatalogError(f"{origin}: {section}.{name} must be a table.")
            merged = dict(raw[section].get(name, {}))
            if section == "models" and "engine" in entry and "engine" in merged:
                entry = {**entry, "engine": {**merged["engine"], **entry["engine"]}}
            merged.update(entry)
            merged["__origin__"] = origin
            raw[section][name] = merged


def _build(raw: dict[str, dict[str, dict[str, Any]]], sources: tuple[str, ...]) -> Catalog:
    raw = {**raw, "models": _inherit_from_bases(raw["models"])}
    built: dict[str, dict[str, Any]] = {}
    for section, cls in _SPEC_TYPES.items():
        built[section] = {name: _make(cls, section, name, dict(entry)) for name, entry in raw[section].items()}
    catalog = Catalog(sources=sources, **built)
    _check_references(catalog)
    return catalog


# What an adapter entry may not set: the engine that loads its base decides them.
ENGINE_LEVEL_FIELDS = ("dtype", "max_model_len", "tensor_parallel_size", "revision", "source", "path",
                       "engine", "vllm")


def _inherit_from_bases(models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """An adapter entry (``base`` + ``adapter``) takes every field it does not set from its base."""
    out = dict(models)
    for name, entry in models.items():
        base_name = entry.get("base")
        if not base_name:
            continue
        where = f"{entry.get('__origin__', 'catalog')}: models.{name}"
        if not isinstance(base_name, str) or base_name not in models:
            raise CatalogError(_unknown("model", str(base_name), models, f"{where}: base"))
        base = models[base_name]
        if base.get("base"):
            raise CatalogError(f"{where}: base {base_name!r} is itself an adapter. Name the model its adapter is for.")
        if not entry.get("adapter"):
            raise CatalogError(f"{where}: base is set but adapter is not. Give adapter = a local folder or a hub id.")
        own = sorted(set(entry) & set(ENGINE_LEVEL_FIELDS))
        if own:
            raise CatalogError(
                f"{where}: an adapter entry cannot set {', '.join(own)}: the engine that loads its base "
                f"({base_name}) decides them. Set them on models.{base_name}."
            )
        inherited = {k: v for k, v in base.items() if k not in ("__origin__", "adapter", "adapter_revision")}
        out[name] = {**inherited, **entry}
    return out


def _make(cls: type, section: str, name: str, entry: dict[str, Any]) -> Any:
    origin = entry.pop("__origin__", "catalog")
    known = {f.name: f for f in fields(cls)}
    where = f"{origin}: {section}.{name}"
    for key in entry:
        if key not in known or key == "name":
            raise CatalogError(
                f"{where}: unknown field {key!r}. Known fields: {', '.join(k for k in known if k != 'name')}."
            )
    required = [
        f.name for f in fields(cls)
        if f.name != "name" and f.default is MISSING and f.default_factory is MISSING
    ]
    missing = [k for k in required if k not in entry]
    if missing:
        raise CatalogError(f"{where}: missing field(s) {', '.join(missing)}. Add them to the entry.")
    values: dict[str, Any] = {"name": name}
    for key, value in entry.items():
        values[key] = _coerce(where, key, value, known[key].type)
    spec = cls(**values)
    _check_values(where, spec)
    return spec


def _coerce(where: str, key: str, value: Any, annotation: Any) -> Any:
    text = str(annotation)
    expected: tuple[type, ...]
    if text.startswith("tuple"):
        if isinstance(value, str):  # categories: datasets = "offline"
            return (value,)
        if not isinstance(value, list):
            raise CatalogError(f"{where}: {key} must be a list, got {value!r}.")
        return tuple(value)
    if text.startswith("dict"):
        if not isinstance(value, dict):
            raise CatalogError(f"{where}: {key} must be a table, got {value!r}.")
        return dict(value)
    expected = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}.get(text, (object,))
    if isinstance(value, bool) and bool not in expected:
        raise CatalogError(f"{where}: {key} must be {text}, got {value!r}.")
    if not isinstance(value, expected):
        raise CatalogError(f"{where}: {key} must be {text}, got {value!r}.")
    return float(value) if text == "float" else value


def _check_values(where: str, spec: Any) -> None:
    if isinstance(spec, ModelSpec):
        if spec.kind not in ("chat", "base"):
            raise CatalogError(f"{where}: kind must be \"chat\" or \"base\", got {spec.kind!r}.")
        if spec.source not in ("hf", "smollm2_package", "path"):
            raise CatalogError(f"{where}: source must be \"hf\", \"path\" or \"smollm2_package\", got {spec.source!r}.")
        bad = sorted(set(spec.engine) - set(PRESET_SETTING_NAMES))
        if bad:
            raise CatalogError(
                f"{where}.engine: unknown setting(s) {', '.join(bad)}. Known: {', '.join(PRESET_SETTING_NAMES)}."
            )
        _check_generation_fields(where, spec)
    elif isinstance(spec, DatasetSpec):
        from .registry import LOADERS, PROMPTS, SCORERS

        for registry, value in ((PROMPTS, spec.task_type), (LOADERS, spec.loader), (SCORERS, spec.scorer)):
            if value not in registry:
                raise CatalogError(f"{where}: {registry.group[:-1].replace('prompt', 'task_type')} must be one of "
                                   f"{', '.join(registry.names())}, got {value!r}.")
        if spec.scorer_options:  # only then is the scorer imported (a catalog load stays light)
            from .scoring.options import validate

            validate(f"{where}.scorer_options", spec.scorer, SCORERS.get(spec.scorer), spec.scorer_options)
    elif isinstance(spec, PresetSpec):
        if not 0.05 <= spec.gpu_memory_utilization <= 1.0:
            raise CatalogError(f"{where}: gpu_memory_utilization must be in (0.05, 1.0], got {spec.gpu_memory_utilization}.")
        if spec.max_num_seqs < 1:
            raise CatalogError(f"{where}: max_num_seqs must be at least 1.")


SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty")


def _check_generation_fields(where: str, spec: ModelSpec) -> None:
    """Thinking, pinned sampling, vLLM pass-through and adapter fields."""
    if spec.thinking_switch and not (spec.reasoning and spec.chat):
        raise CatalogError(f"{where}: thinking_switch = true needs reasoning = true and kind = \"chat\" "
                           "(the switch is a chat template argument).")
    if spec.max_thinking_tokens < 0:
        raise CatalogError(f"{where}: max_thinking_tokens must be >= 0, got {spec.max_thinking_tokens}.")
    for table in ("sampling", "sampling_thinking_off"):
        values = getattr(spec, table)
        unknown = sorted(set(values) - set(SAMPLING_KEYS))
        if unknown:
            raise CatalogError(f"{where}.{table}: unknown setting(s) {', '.join(unknown)}. "
                               f"Known: {', '.join(SAMPLING_KEYS)}.")
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CatalogError(f"{where}.{table}: {key} must be a number, got {value!r}.")
        if "top_k" in values and not isinstance(values["top_k"], int):
            raise CatalogError(f"{where}.{table}: top_k must be an integer, got {values['top_k']!r}.")
    if spec.vllm:
        from .vllm_args import check_vllm_table

        check_vllm_table(where, spec.vllm)
    if spec.adapter and not spec.base:
        raise CatalogError(f"{where}: adapter is set but base is not. Name the catalog model the adapter is for.")


def _check_references(catalog: Catalog) -> None:
    for cat in catalog.categories.values():
        for m in cat.models:
            if m not in catalog.models:
                raise CatalogError(f"category {cat.name}: {_unknown('model', m, catalog.models, 'the category')}")
        if cat.datasets != ("offline",):
            for d in cat.datasets:
                if d not in catalog.datasets:
                    raise CatalogError(f"category {cat.name}: {_unknown('dataset', d, catalog.datasets, 'the category')}")


def category_datasets(catalog: Catalog, category: CategorySpec) -> tuple[str, ...]:
    if category.datasets == ("offline",):
        return tuple(name for name, d in catalog.datasets.items() if d.offline)
    return category.datasets
