"""Scorer options: what a scorer lets a dataset change about its reading
(BFCL's relaxed fence reading, the sandbox's limits), declared next to the
scorer (``Scorer.options``), set per dataset in the catalog
(``scorer_options`` table) and per run (``--scorer-option``), and checked
before anything runs.

Precedence: the scorer's declared default < the catalog's
``[datasets.NAME.scorer_options]`` < ``--scorer-option NAME=VALUE`` (every
selected dataset whose scorer has that option) < ``--scorer-option
DATASET:NAME=VALUE``.  What reaches ``ScoreContext.options`` is the options
set explicitly (the scorer falls back to its defaults); the stored verdicts
are keyed by the options that differ from the defaults, so a verdict made
under one reading is never reused under another.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..errors import CatalogError

if TYPE_CHECKING:
    from .base import Scorer


@dataclass(frozen=True)
class Option:
    """One option a scorer declares: its type, its default and what it does."""

    type: type
    default: Any
    help: str

    def check(self, where: str, name: str, value: Any) -> Any:
        ok = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise CatalogError(f"{where}: scorer option {name} must be {_type_name(self.type)}, got {value!r}. "
                               f"({name}: {self.help})")
        return value


def _type_name(t: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table"}.get(
        t, t.__name__)


def declared(scorer: "Scorer | type[Scorer]") -> dict[str, Option]:
    return dict(getattr(scorer, "options", None) or {})


def validate(where: str, scorer_name: str, scorer: "Scorer | type[Scorer]", options: dict[str, Any]) -> dict[str, Any]:
    """The options, checked against what the scorer declares (a usage error names the fix)."""
    known = declared(scorer)
    out = {}
    for name, value in options.items():
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=2)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            have = ", ".join(f"{k} ({v.help})" for k, v in sorted(known.items())) or "none"
            raise CatalogError(f"{where}: the {scorer_name} scorer has no option {name!r}.{hint} Its options: {have}.")
        out[name] = known[name].check(where, name, value)
    return out


def parse_run_option(raw: str) -> tuple[str | None, str, Any]:
    """``[DATASET:]NAME=VALUE`` -> (dataset or None, name, value).  VALUE is
    read as a TOML value (true, 3, 1.5, "text", {a = 1}); anything else is a string."""
    head, sep, value = raw.partition("=")
    if not sep or not head.strip():
        raise CatalogError(f"--scorer-option {raw!r}: write NAME=VALUE or DATASET:NAME=VALUE, "
                           "e.g. --scorer-option=bfcl_strict_format=false.")
    dataset, _, name = head.strip().rpartition(":")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return (dataset or None), name.strip(), parsed


def resolve(dataset: str, scorer_name: str, scorer: "Scorer | type[Scorer]", catalog_options: dict[str, Any],
            run_options: Sequence[tuple[str | None, str, Any]]) -> dict[str, Any]:
    """The explicit options of one dataset: the catalog's, then the run's."""
    out = validate(f"dataset {dataset} (catalog scorer_options)", scorer_name, scorer, catalog_options)
    known = declared(scorer)
    for target, name, value in run_options:
        if target is None and name not in known:
            continue  # a run-wide option applies to the datasets whose scorer has it
        if target is not None and target != dataset:
            continue
        out.update(validate(f"--scorer-option {target + ':' if target else ''}{name}", scorer_name, scorer,
                            {name: value}))
    return out


def check_run_options(run_options: Sequence[tuple[str | None, str, Any]], datasets: dict[str, "type[Scorer] | Scorer"],
                      names: Iterable[str]) -> None:
    """Each --scorer-option must reach a selected dataset: a named dataset
    that is selected, or (run-wide) at least one whose scorer has the option."""
    selected = set(names)
    for target, name, _ in run_options:
        if target is not None:
            if target not in selected:
                raise CatalogError(f"--scorer-option {target}:{name}: dataset {target!r} is not in this run. "
                                   f"Selected datasets: {', '.join(sorted(selected))}.")
            continue
        if not any(name in declared(s) for d, s in datasets.items() if d in selected):
            every = sorted({o for s in datasets.values() for o in declared(s)})
            close = difflib.get_close_matches(name, every, n=2)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise CatalogError(f"--scorer-option {name}: no selected dataset's scorer has this option.{hint} "
                               f"Options of the selected scorers: {', '.join(every) or 'none'}.")


def changed(scorer: "Scorer | type[Scorer]", options: dict[str, Any]) -> dict[str, Any]:
    """The options that differ from the scorer's defaults (what changes its reading)."""
    known = declared(scorer)
    return {k: v for k, v in options.items() if k not in known or known[k].default != v}


def key_suffix(scorer: "Scorer", options: dict[str, Any]) -> str:
    """What the stored verdicts' scorer version gets appended: empty for the
    default reading, else a short hash of the options that differ from it."""
    changed_ = changed(scorer, options)
    if not changed_:
        return ""
    blob = json.dumps(changed_, sort_keys=True, default=str).encode()
    return "+opts." + hashlib.sha256(blob).hexdigest()[:10]


__all__ = ["Option", "declared", "validate", "parse_run_option", "resolve", "check_run_options", "changed", "key_suffix"]
