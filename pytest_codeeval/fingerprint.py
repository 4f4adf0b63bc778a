"""Content hashes of dataset items: what pins the data a run evaluated.

A hub revision pins where data came from; these hashes pin what it was.
Every run records, per dataset, the sha256 of the items it evaluated (ids,
prompts, tests or reference answers: everything an ``Item`` holds) in its
manifest, and each stored generation's key holds its item's digest, so a
changed item (a fixed test, an edited prompt) is generated and judged again
while unchanged items of the same dataset are reused.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

from .items import Item

# id(item) -> (item, digest): items live for the whole run (the session keeps
# them), and an Item holds a dict, so it cannot key a dict itself.
_DIGESTS: dict[int, tuple[Item, str]] = {}


def _canonical(item: Item) -> bytes:
    return json.dumps(item.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=_plain).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, tuple):
        return list(value)
    return repr(value)


def item_sha256(item: Item) -> str:
    """sha256 of one item's canonical JSON (computed once per item object)."""
    cached = _DIGESTS.get(id(item))
    if cached is not None and cached[0] is item:
        return cached[1]
    digest = hashlib.sha256(_canonical(item)).hexdigest()
    _DIGESTS[id(item)] = (item, digest)
    return digest


def dataset_sha256(items: Sequence[Item]) -> str:
    """sha256 over the items in order (each item's digest, one a line)."""
    h = hashlib.sha256()
    for item in items:
        h.update(item_sha256(item).encode() + b"\n")
    return h.hexdigest()


__all__ = ["item_sha256", "dataset_sha256"]
