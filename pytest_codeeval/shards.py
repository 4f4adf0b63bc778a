"""``--shard I/N``: the I-th of N deterministic slices of the selected cases,
for batch schedulers (a SLURM array job runs the same command with
``--shard=$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`` on each machine).

Every machine computes the same split from the same inputs: the selected
cases in plan order (pytest's ``-m``/``-k`` already applied) and their
weights, which come from the catalog and the options only (each dataset's
published item count, capped by ``--samples``, times ``--n-samples``), never
from what a machine happens to have downloaded.

- At least N model x preset engines: whole engines go to shards, heaviest
  first to the lightest shard, so each model loads on exactly one machine.
- Fewer engines than shards: the plan (grouped by engine) is cut into N
  contiguous slices of about equal weight; an engine then loads on each
  shard that holds some of its cases, once.

Each shard's comparison records the split (``options.shard``: index, count
and every planned case id), which is how ``python -m pytest_codeeval merge``
orders the merged cases and tells which are missing (merge.py).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pytest

from .plan import Case

# The shard's record for the report: {"index", "count", "cases": every planned case id, in plan order}.
SHARD_KEY = pytest.StashKey[dict[str, Any]]()
UNKNOWN_ITEMS = 100  # the weight of a dataset whose size the catalog does not know


def assign(cases: Sequence[Case], count: int, weight: Callable[[Case], int]) -> list[int]:
    """The shard (0-based) of each case."""
    keys = list(dict.fromkeys(c.engine_key for c in cases))
    if len(keys) >= count:
        totals = {k: sum(weight(c) for c in cases if c.engine_key == k) for k in keys}
        load = [0] * count
        where: dict[str, int] = {}
        for k in sorted(keys, key=lambda k: (-totals[k], keys.index(k))):
            shard = min(range(count), key=lambda i: (load[i], i))
            where[k] = shard
            load[shard] += totals[k]
        return [where[c.engine_key] for c in cases]
    order = sorted(range(len(cases)), key=lambda i: (keys.index(cases[i].engine_key), i))
    weights = [max(1, weight(cases[i])) for i in order]
    total = sum(weights)
    out = [0] * len(cases)
    shard, done, in_shard = 0, 0, 0
    for pos, (i, w) in enumerate(zip(order, weights)):
        later = count - 1 - shard  # shards after this one
        # Next slice once this one holds its share (the case's midpoint is past it), or when the
        # cases left are just enough to give each later shard one.
        if in_shard and later and (len(order) - pos <= later or done + w / 2 > total * (shard + 1) / count):
            shard, in_shard = shard + 1, 0
        out[i] = shard
        in_shard += 1
        done += w
    return out


def case_weight(state: Any) -> Callable[[Case], int]:
    """A case's work as the catalog and the options know it (the same on every machine)."""
    o = state.options

    def weight(case: Case) -> int:
        known = state.catalog.dataset(case.dataset).n_items or 0
        items = (min(known, o.samples) if known else o.samples) if o.samples else (known or UNKNOWN_ITEMS)
        return max(1, items) * o.n_samples

    return weight


def apply_shard(state: Any, config: pytest.Config, items: list[pytest.Item],
                case_of: Callable[[pytest.Item], Case | None]) -> None:
    """Deselect the cases of the other shards (other tests stay), before datasets load."""
    index, count = state.scale.shard
    pairs = [(item, case_of(item)) for item in items]
    cases = [c for _, c in pairs if c is not None]
    shard_of = dict(zip((c.id for c in cases), assign(cases, count, case_weight(state))))
    keep = [item for item, c in pairs if c is None or shard_of[c.id] == index - 1]
    drop = [item for item, c in pairs if c is not None and shard_of[c.id] != index - 1]
    config.stash[SHARD_KEY] = {"index": index, "count": count, "cases": [c.id for c in cases]}
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def shard_options(state: Any) -> dict[str, Any]:
    """``{"shard": record}`` for the comparison's options when the run is a shard, else nothing."""
    record = state.config.stash.get(SHARD_KEY, None)
    return {"shard": record} if record is not None else {}


__all__ = ["assign", "apply_shard", "case_weight", "shard_options", "SHARD_KEY"]
