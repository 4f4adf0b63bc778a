"""Dataset loaders, one module per kind of source, imported lazily.

A loader is a function ``load(spec, ctx) -> list[Item]``, found by the
catalog's ``loader`` name in the registry (registry.LOADERS).  It reads a local
copy when ``ctx`` points at one (``--data-dir``, ``$CODEEVAL_DATA_DIR`` or an
absolute ``local_path``), otherwise the HuggingFace hub through ``datasets``.
"""

from __future__ import annotations

from ..catalog import DatasetSpec
from ..errors import DatasetError
from ..items import Item
from .context import LoadContext


def load_dataset(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    """Load all items of a dataset, checked: ids unique, task type set."""
    from ..registry import LOADERS

    items = LOADERS.get(spec.loader)(spec, ctx)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DatasetError(f"dataset {spec.name!r}: task id {item.id!r} appears twice. Ids must be unique.")
        seen.add(item.id)
    if not items:
        raise DatasetError(f"dataset {spec.name!r} has no items. Check its source ({spec.local_path or spec.hf_id}).")
    return items


__all__ = ["LoadContext", "load_dataset"]
