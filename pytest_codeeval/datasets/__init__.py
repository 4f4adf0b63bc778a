"""Dataset loaders, one module per kind of source, looked up by the catalog's
``loader`` name and imported lazily.

A loader is a function ``load(spec, ctx) -> list[Item]``.  It reads a local
copy when ``ctx`` points at one (``--data-dir``, ``$CODEEVAL_DATA_DIR`` or an
absolute ``local_path``), otherwise the HuggingFace hub through ``datasets``.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..catalog import DatasetSpec
from ..errors import CatalogError, DatasetError
from ..items import Item
from .context import LoadContext

# catalog loader name -> "module:function"
LOADERS: dict[str, str] = {
    "humaneval": "pytest_codeeval.datasets.humaneval:load",
    "humaneval_jsonl": "pytest_codeeval.datasets.humaneval:load_jsonl_file",
    "shipped": "pytest_codeeval.datasets.shipped:load",
    "mbpp": "pytest_codeeval.datasets.mbpp:load",
    "evalplus": "pytest_codeeval.datasets.evalplus:load",
    "gsm8k": "pytest_codeeval.datasets.gsm8k:load",
    "ifeval": "pytest_codeeval.datasets.ifeval:load",
    "bfcl": "pytest_codeeval.datasets.bfcl:load",
}


def get_loader(spec: DatasetSpec) -> Callable[[DatasetSpec, LoadContext], list[Item]]:
    try:
        target = LOADERS[spec.loader]
    except KeyError:
        raise CatalogError(
            f"dataset {spec.name!r} names unknown loader {spec.loader!r}. Known loaders: {', '.join(LOADERS)}."
        ) from None
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise CatalogError(
            f"dataset {spec.name!r}: its loader {spec.loader!r} is not built in this version "
            f"of pytest-codeeval ({e}). Pick another dataset with --datasets."
        ) from None


def load_dataset(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    """Load all items of a dataset, checked: ids unique, task type set."""
    items = get_loader(spec)(spec, ctx)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DatasetError(f"dataset {spec.name!r}: task id {item.id!r} appears twice. Ids must be unique.")
        seen.add(item.id)
    if not items:
        raise DatasetError(f"dataset {spec.name!r} has no items. Check its source ({spec.local_path or spec.hf_id}).")
    return items


__all__ = ["LOADERS", "LoadContext", "get_loader", "load_dataset"]
