"""The names vLLM accepts as engine arguments, read without importing vLLM.

A catalog model's ``[models.NAME.vllm]`` table goes to ``vllm.LLM(...)`` as
it is, so a typo there would surface only when the model loads, minutes
into a run.  The names are checked when the catalog is read instead, with a
did-you-mean.  Importing vllm costs seconds and pulls in torch, which a dry
run must not do (tests/test_plan.py checks ``sys.modules``), so the names are
read from the installed package's source with ``ast``: the annotated fields
of ``EngineArgs`` (vllm/engine/arg_utils.py) and the keyword parameters of
``LLM.__init__`` (vllm/entrypoints/llm.py), which adds ``chat_template``.
Without vllm installed nothing is checked here; the engine says so at load.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
from pathlib import Path
from typing import Any

from .errors import CatalogError

# Engine arguments the catalog sets from its own fields: a [vllm] table that
# set them too would disagree with the field the suite reads (budgets, keys).
OWNED_ELSEWHERE = {
    "model": "hf_id (or source = \"path\" and path)",
    "dtype": "the model's dtype",
    "max_model_len": "the model's max_model_len",
    "tensor_parallel_size": "the model's tensor_parallel_size",
    "revision": "the model's revision",
    "seed": "--seed",
    "gpu_memory_utilization": "[models.NAME.engine] (a preset setting)",
    "max_num_seqs": "[models.NAME.engine] (a preset setting)",
    "max_num_batched_tokens": "[models.NAME.engine] (a preset setting)",
    "enforce_eager": "[models.NAME.engine] (a preset setting)",
    "kv_cache_dtype": "[models.NAME.engine] (a preset setting)",
    "enable_prefix_caching": "[models.NAME.engine] (a preset setting)",
}


def _vllm_dir() -> Path | None:
    spec = importlib.util.find_spec("vllm")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _class_fields(tree: ast.Module, name: str) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return set()


def _init_params(tree: ast.Module, cls: str) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
                    a = fn.args
                    return {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]} - {"self"}
    return set()


@functools.lru_cache(maxsize=1)
def engine_arg_names() -> frozenset[str] | None:
    """Every keyword ``vllm.LLM(...)`` accepts, or None when vllm is not installed (or unreadable)."""
    root = _vllm_dir()
    if root is None:
        return None
    try:
        fields = _class_fields(ast.parse((root / "engine" / "arg_utils.py").read_text()), "EngineArgs")
        llm_path = root / "entrypoints" / "llm.py"
        params = _init_params(ast.parse(llm_path.read_text()), "LLM") if llm_path.is_file() else set()
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    return frozenset(fields | params) if fields else None


def check_vllm_table(where: str, table: dict[str, Any]) -> None:
    """A usage error for a [vllm] key the catalog owns elsewhere, or one this vLLM does not know."""
    for key in table:
        if key in OWNED_ELSEWHERE:
            raise CatalogError(f"{where}.vllm: {key} is set through {OWNED_ELSEWHERE[key]}, not the [vllm] table. "
                               "Move it there.")
    known = engine_arg_names()
    if known is None:
        return
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise CatalogError(f"{where}.vllm: {key!r} is not a vLLM engine argument (vllm.LLM / EngineArgs of the "
                               f"installed vLLM).{hint} Fix the name or remove it.")


__all__ = ["OWNED_ELSEWHERE", "engine_arg_names", "check_vllm_table"]
