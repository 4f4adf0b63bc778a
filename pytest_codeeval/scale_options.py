"""Options for running beyond one machine: a Ray cluster (``--ray-address``,
``--ray-resources``, ``--ray-chunk``) and shards of the plan (``--shard``).

Parsed apart from options.RunOptions (their own dataclass, one line in the
session) because nothing here changes what a model writes: a generation made
on the cluster or in a shard has the same store key as one made locally.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from . import defaults
from .errors import CodeevalError

RESOURCES_EXAMPLE = ("--ray-resources='{\"GPU\": 1}', or per engine "
                     "--ray-resources='{\"*\": {\"CPU\": 1}, \"@memory_optimized\": {\"node_b\": 1}}'")


def add_scale_options(add: Callable[..., None]) -> None:
    """Called from options.addoptions with its ``add`` (so the suite wakes when one is given)."""
    add("--ray-address", default=None, metavar="ADDR",
        help="run each model x preset engine as Ray actors on this cluster (host:port of the head node, or "
             "'auto'); every model's work is submitted when the session starts and stored as it arrives")
    add("--ray-resources", default=None, metavar="JSON",
        help="what each engine replica asks the cluster for (default: {\"GPU\": tensor_parallel_size} on a "
             "cluster with GPUs, else {\"CPU\": 1}); a JSON object of resources, or of engine selectors "
             "(\"model@preset\", \"model\", \"@preset\", \"*\") to resources")
    add("--ray-chunk", type=int, default=defaults.RAY_CHUNK, metavar="N",
        help=f"requests per actor call: each call is stored when it returns, so a lost node loses at most one "
             f"chunk per replica (default {defaults.RAY_CHUNK})")
    add("--shard", default=None, metavar="I/N",
        help="run the I-th of N deterministic slices of the selected cases (same plan on every machine; a "
             "model x preset stays in one shard when there are at least N of them); merge the shards' report "
             "dirs with: python -m pytest_codeeval merge --report-dir=OUT DIR...")


ResourceRules = dict[str, dict[str, float]]  # selector -> resources of one replica


@dataclass(frozen=True)
class ScaleOptions:
    ray_address: str | None = None
    ray_resources: ResourceRules = field(default_factory=dict)
    ray_chunk: int = defaults.RAY_CHUNK
    shard: tuple[int, int] | None = None  # (index from 1, count)

    @classmethod
    def from_config(cls, config: pytest.Config) -> "ScaleOptions":
        opt = config.option
        address = (getattr(opt, "ray_address", None) or "").strip() or None
        chunk = int(getattr(opt, "ray_chunk", defaults.RAY_CHUNK))
        if chunk < 1:
            raise CodeevalError(f"--ray-chunk must be at least 1, got {chunk}.")
        resources = parse_resources(getattr(opt, "ray_resources", None))
        if resources and address is None:
            raise CodeevalError("--ray-resources says what engines ask a Ray cluster for: add --ray-address=ADDR.")
        if address is not None:
            _check_ray_combination(config)
        return cls(address, resources, chunk, parse_shard(getattr(opt, "shard", None)))

    def resources_for(self, engine_key: str) -> dict[str, float] | None:
        """The resources a replica of ``engine_key`` (model@preset) asks for: the most specific
        rule, or None (the cluster's default: cluster/connect.default_resources)."""
        model, _, preset = engine_key.partition("@")
        for selector in (engine_key, model, f"@{preset}", "*"):
            if selector in self.ray_resources:
                return dict(self.ray_resources[selector])
        return None


def _check_ray_combination(config: pytest.Config) -> None:
    if getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        raise CodeevalError("--ray-address runs every engine on the Ray cluster at once; xdist workers (-n) add "
                            "nothing but a second copy of each model: drop -n.")
    if getattr(config.option, "gpus", None) not in (None, "all"):
        raise CodeevalError("--gpus places engines on this machine's GPUs; with --ray-address the cluster assigns "
                            "them (--ray-resources says how many): drop --gpus.")


def parse_resources(raw: str | None) -> ResourceRules:
    """``{"GPU": 1}`` (every engine) or ``{"*": {...}, "@memory_optimized": {...}}`` (per engine)."""
    if raw is None or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CodeevalError(f"--ray-resources is not JSON ({e.msg}): give {RESOURCES_EXAMPLE}.") from None
    if not isinstance(data, dict) or not data:
        raise CodeevalError(f"--ray-resources must be a JSON object: give {RESOURCES_EXAMPLE}.")
    rules = {"*": data} if all(not isinstance(v, dict) for v in data.values()) else data
    out: ResourceRules = {}
    for selector, resources in rules.items():
        if not isinstance(resources, dict) or not all(_amount(v) for v in resources.values()):
            raise CodeevalError(f"--ray-resources: the resources of {selector!r} must map resource names to "
                                f"numbers >= 0, got {json.dumps(resources)}: give {RESOURCES_EXAMPLE}.")
        out[str(selector)] = {str(k): float(v) for k, v in resources.items()}
    return out


def _amount(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def parse_shard(raw: str | None) -> tuple[int, int] | None:
    if raw is None or not str(raw).strip():
        return None
    index, sep, count = str(raw).strip().partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise CodeevalError(f"--shard {raw}: give I/N with 1 <= I <= N, e.g. --shard=1/4 for the first of four "
                            "slices (the same plan on every machine).")
    return i, n


__all__ = ["ScaleOptions", "add_scale_options", "parse_resources", "parse_shard"]
