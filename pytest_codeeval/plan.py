"""The plan: which model x preset x dataset cases a run has, their ids and marks.

With ``-m EXPR`` every category contributes its cases (each carrying its
category, model and dataset as marks) and pytest's own ``-m`` selects.
Without ``-m`` the plan is ``--models`` x ``--datasets``, each defaulting to
the default category's.  Model-free engines (reference, replay) replace the
model axis with a single pseudo-model.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import pytest

from . import defaults
from .catalog import Catalog, category_datasets
from .options import RunOptions

DEFAULT_CATEGORY = defaults.DEFAULT_CATEGORY
ENGINE_KEY_SEP = "@"


@dataclass(frozen=True)
class Case:
    model: str
    preset: str
    dataset: str
    categories: tuple[str, ...] = ()
    multi_preset: bool = False
    engine_model: str = ""  # the model whose engine serves this case: a LoRA adapter's base ("": the model)

    @property
    def id(self) -> str:
        if self.multi_preset:
            return f"{self.model}-{self.preset}-{self.dataset}"
        return f"{self.model}-{self.dataset}"

    @property
    def engine_key(self) -> str:
        """Identifies one loaded engine: a model under a preset.  A base model
        and its LoRA adapters share one: one load serves them all."""
        return f"{self.engine_model or self.model}{ENGINE_KEY_SEP}{self.preset}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id"] = self.id
        d["categories"] = list(self.categories)
        d.pop("multi_preset")
        if not d["engine_model"] or d["engine_model"] == self.model:
            d.pop("engine_model")
        return d


def split_engine_key(key: str) -> tuple[str, str]:
    model, _, preset = key.partition(ENGINE_KEY_SEP)
    return model, preset


def build_cases(catalog: Catalog, options: RunOptions) -> list[Case]:
    """Every case this invocation could run, before pytest's -m selection."""
    pseudo = options.pseudo_model
    pairs: dict[tuple[str, str], set[str]] = {}

    def add(model: str, dataset: str, category: str | None) -> None:
        cats = pairs.setdefault((model, dataset), set())
        if category:
            cats.add(category)

    if options.markexpr:
        for cat in catalog.categories.values():
            models = (pseudo,) if pseudo else cat.models
            for m in models:
                for d in category_datasets(catalog, cat):
                    add(m, d, cat.name)
        # Datasets given as files belong to no category; pair them explicitly.
        for d in options.dataset_files:
            for m in (pseudo,) if pseudo else options.models:
                add(m, d, None)
    else:
        default = catalog.category(DEFAULT_CATEGORY)
        models = (pseudo,) if pseudo else (options.models or default.models)
        datasets = options.datasets or category_datasets(catalog, default)
        for m in models:
            for d in datasets:
                add(m, d, DEFAULT_CATEGORY if not options.models and not options.datasets else None)
    cases = [
        (m, d, tuple(sorted(cats)))
        for (m, d), cats in pairs.items()
        if (pseudo or not options.models or m in options.models)
        and (not options.datasets or d in options.datasets)
    ]
    multi = len(options.presets) > 1

    def engine_model(m: str) -> str:
        spec = None if pseudo else catalog.models.get(m)
        return spec.engine_model if spec is not None and spec.base else ""

    return [
        Case(model=m, preset=p, dataset=d, categories=cats, multi_preset=multi, engine_model=engine_model(m))
        for p in options.presets
        for (m, d, cats) in cases
    ]


def case_marks(case: Case) -> list[pytest.MarkDecorator]:
    """Category, model and dataset marks, plus the xdist group that keeps a
    model's cases on one worker (it must be on the param: a mark added in
    pytest_collection_modifyitems is too late for --dist loadgroup)."""
    names = [*case.categories, case.model, case.dataset]
    marks = [getattr(pytest.mark, n) for n in dict.fromkeys(names)]
    marks.append(pytest.mark.xdist_group(case.engine_key))
    return marks


def marker_lines(catalog: Catalog, extra_datasets: Iterable[str] = ()) -> list[str]:
    """ini `markers` lines for every category, model and dataset, so --strict-markers works."""
    lines = [f"{c.name}: category - {c.description}" for c in catalog.categories.values()]
    lines += [f"{m.name}: model {m.hf_id}" for m in catalog.models.values()]
    lines += [f"{d.name}: dataset - {d.description}" for d in catalog.datasets.values()]
    lines += [f"{d}: dataset file" for d in extra_datasets]
    lines += ["reference: the reference engine's pseudo-model", "replay: the --completions pseudo-model"]
    return lines


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"and", "or", "not", "True", "False", "None"}


def check_markexpr(markexpr: str, catalog: Catalog, known_markers: Iterable[str]) -> None:
    """An identifier in -m that names nothing known is almost always a typo of a category."""
    known = set(known_markers) | set(catalog.categories) | set(catalog.models) | set(catalog.datasets)
    for ident in _IDENT.findall(markexpr):
        if ident not in _KEYWORDS and ident not in known:
            catalog.category(ident)  # raises the "unknown category ... did you mean" error


def registered_markers(config: pytest.Config) -> list[str]:
    return [line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")]


def categories_in(markexpr: str, catalog: Catalog) -> list[str]:
    return [i for i in dict.fromkeys(_IDENT.findall(markexpr)) if i in catalog.categories]


def plan_label(options: RunOptions, catalog: Catalog) -> str:
    """The category part of report file names."""
    if options.markexpr:
        cats = categories_in(options.markexpr, catalog)
        return "+".join(cats) if cats else "custom"
    if not options.models and not options.datasets:
        return DEFAULT_CATEGORY
    return "custom"


def summary_line(cases: list[Case], presets: tuple[str, ...]) -> str:
    models = list(dict.fromkeys(c.model for c in cases))
    datasets = list(dict.fromkeys(c.dataset for c in cases))
    preset_part = f"preset{'s' if len(presets) > 1 else ''} {', '.join(presets)}"
    return (
        f"{len(cases)} case{'s' if len(cases) != 1 else ''}: {len(models)} model{'s' if len(models) != 1 else ''} "
        f"x {len(datasets)} dataset{'s' if len(datasets) != 1 else ''}, {preset_part}"
    )


def write_plan(path: Path, cases: list[Case], options: RunOptions, label: str, n_items: dict[str, int],
               generation: dict[str, dict[str, Any]] | None = None) -> None:
    """``generation``: per case id, how it generates (generation.plan_entry)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    generation = generation or {}
    payload = {
        "label": label,
        "presets": list(options.presets),
        "engine": options.engine,
        "samples": options.samples,
        "n_samples": options.n_samples,
        "thinking": options.thinking,
        "sampling": options.sampling,
        "summary": summary_line(cases, options.presets),
        "cases": [{**c.to_dict(), "n_items": n_items.get(c.dataset), "generation": generation.get(c.id)}
                  for c in cases],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_dry_run_plan(state: Any) -> list[tuple[str, bool]]:
    """Write the plan JSON of the selected cases (reports/plans/...) and
    return the lines to show: (text, is_warning)."""
    from .session import ensure_writable

    o = state.options
    label = plan_label(o, state.catalog)
    ensure_writable(state.report_dir)
    path = state.report_dir / "plans" / f"{label}_{'+'.join(o.presets)}_plan.json"
    datasets = {c.dataset for c in state.selected} - set(state.unavailable)
    n_items = {d: len(state.items(d)) for d in datasets}
    for d in state.unavailable:  # not here: the count the catalog knows, capped by --samples
        known = state.catalog.dataset(d).n_items or None
        n_items[d] = min(known, o.samples) if known and o.samples else known
    write_plan(path, state.selected, o, label, n_items, {c.id: state.generation_plan(c) for c in state.selected})
    lines = [(summary_line(state.selected, o.presets), False)]
    lines += [(why.dry_run_line(name), True) for name, why in state.unavailable.items()]
    lines += [(f"codeeval: WARNING: {note}", True) for note in state.notes]
    lines.append((f"codeeval plan written to {path}", False))
    return lines
