"""One lazy registry for everything the catalog names by string: dataset
loaders, scorers, engines and prompt builders.

Built-in entries are ``"module:attr"`` strings, imported on first use, so a
dry run imports no engine or scorer.  A user's package adds its own through
entry points, without forking the suite (as lm-evaluation-harness's
``api/registry.py`` does)::

    [project.entry-points."pytest_codeeval.scorers"]
    my_scorer = "my_pkg.scoring:MyScorer"

Groups: ``pytest_codeeval.loaders``, ``.scorers``, ``.engines``, ``.prompts``.
A conftest.py may also ``register`` an entry for its own runs.  An unknown
name is a usage error with a did-you-mean.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from .errors import CatalogError

ENTRY_POINT_PREFIX = "pytest_codeeval."


@dataclass
class Registry:
    """Names of one kind of thing -> "module:attr" targets, resolved lazily."""

    kind: str  # "loader", "scorer", ... (for messages)
    group: str  # entry point group suffix: "loaders", "scorers", ...
    builtin: dict[str, str]
    _plugins: dict[str, Any] | None = field(default=None, repr=False)
    _registered: dict[str, Any] = field(default_factory=dict, repr=False)

    def register(self, name: str, obj: Any) -> None:
        """Add (or replace) an entry at run time, e.g. from a conftest.py: an
        engine that wraps another, a project's own scorer."""
        self._registered[name] = obj

    def _entry_points(self) -> dict[str, Any]:
        if self._plugins is None:
            self._plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_PREFIX + self.group)}
        return self._plugins

    def names(self) -> list[str]:
        return sorted({*self.builtin, *self._entry_points(), *self._registered})

    def __contains__(self, name: str) -> bool:
        return name in self._registered or name in self.builtin or name in self._entry_points()

    def get(self, name: str) -> Any:
        """The registered object (a class, a function or a module)."""
        if name in self._registered:
            return self._registered[name]
        if name in self.builtin:
            return _import(self.builtin[name], self.kind, name)
        ep = self._entry_points().get(name)
        if ep is not None:
            try:
                return ep.load()
            except Exception as e:
                raise CatalogError(f"{self.kind} {name!r} comes from the entry point {ep.value!r}, which fails to "
                                   f"load ({type(e).__name__}: {e}). Fix or uninstall the package that declares it.") from None
        close = difflib.get_close_matches(name, self.names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise CatalogError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(self.names())}. A package can add one "
            f"through the entry point group {ENTRY_POINT_PREFIX + self.group!r}."
        )


def _import(target: str, kind: str, name: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
        return getattr(obj, attr) if attr else obj
    except ImportError as e:
        if kind == "engine":
            from .errors import EngineConfigError

            raise EngineConfigError(
                f"engine {name!r} is not available: {e}. Install the extra it needs "
                "(pip install 'pytest-codeeval[cpu]' or 'pytest-codeeval[gpu]')."
            ) from e
        raise CatalogError(f"{kind} {name!r} cannot be imported ({e}). Install what it needs or pick another.") from None


LOADERS = Registry("loader", "loaders", {
    "humaneval": "pytest_codeeval.datasets.humaneval:load",
    "humaneval_jsonl": "pytest_codeeval.datasets.humaneval:load_jsonl_file",
    "shipped": "pytest_codeeval.datasets.shipped:load",
    "mbpp": "pytest_codeeval.datasets.mbpp:load",
    "evalplus": "pytest_codeeval.datasets.evalplus:load",
    "gsm8k": "pytest_codeeval.datasets.gsm8k:load",
    "ifeval": "pytest_codeeval.datasets.ifeval:load",
    "bfcl": "pytest_codeeval.datasets.bfcl:load",
})

SCORERS = Registry("scorer", "scorers", {
    "code_exec": "pytest_codeeval.scoring.code:CodeExecScorer",
    "bfcl_ast": "pytest_codeeval.scoring.bfcl:BfclAstScorer",
    "gsm8k": "pytest_codeeval.scoring.gsm8k:Gsm8kScorer",
    "ifeval": "pytest_codeeval.scoring.ifeval:IfevalScorer",
})

ENGINES = Registry("engine", "engines", {
    "reference": "pytest_codeeval.engines.reference:ReferenceEngine",
    "replay": "pytest_codeeval.engines.replay:ReplayEngine",
    "vllm": "pytest_codeeval.engines.vllm_engine:VLLMEngine",
    "server": "pytest_codeeval.engines.server:ServerEngine",
    "hf": "pytest_codeeval.engines.hf:HFEngine",
})

# A prompt module exposes TEMPLATES (hashed into the manifest) and build(item, chat, system_prompt).
PROMPTS = Registry("prompt builder", "prompts", {
    "code": "pytest_codeeval.prompts.code",
    "function_calling": "pytest_codeeval.prompts.function_calling",
    "math": "pytest_codeeval.prompts.math",
    "instruction_following": "pytest_codeeval.prompts.instruction_following",
})

__all__ = ["Registry", "LOADERS", "SCORERS", "ENGINES", "PROMPTS"]
