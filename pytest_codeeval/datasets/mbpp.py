"""MBPP (full and sanitized), test split, as code items.

Sources: a local copy of the upstream files (``mbpp/mbpp.jsonl``, all 974
tasks; ``mbpp/sanitized-mbpp.json``, one JSON array of 427) or the hub
(``google-research-datasets/mbpp``, configs ``full`` / ``sanitized``, split
``test``).  The test split is the one the MBPP authors define and the hub
loader applies to both configs: task ids 11-510 (500 full, 257 sanitized).

Item shape (what CodeExecScorer runs; the same as HumanEval's):

- prompt: the EvalPlus / bigcode-evaluation-harness MBPP prompt, a docstring
  holding the task text and its first test, ``'\"\"\"\\n<text>\\n<test 1>\\n\"\"\"\\n'``;
- reference: the dataset's code, a whole program that runs after that
  docstring (so prompt + reference is a valid program, for completions and
  for the reference engine's fenced chat reply alike);
- data["test"]: ``def check(candidate):`` with every assert of test_list,
  which call the function by its name (the judge binds that name too);
- data["entry_point"]: the function the first assert calls;
- data["test_setup"]: the sanitized set's test_imports, run before the
  program and the tests;
- data["format"]: "mbpp".

The full set's ``test_setup_code`` (only task 367: it builds trees from the
program's own ``Node`` class) needs the program's definitions, so it goes
at the top of ``check``'s body rather than into test_setup, which the
sandbox runs before the program.  ``challenge_test_list`` is not used: the
published MBPP numbers are on test_list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from ..catalog import DatasetSpec
from ..errors import DatasetError
from ..items import Item
from .context import LoadContext
from .hub import load_hub_rows
from .jsonl import read_jsonl, require_fields

TEST_IDS = range(11, 511)  # the MBPP paper's test split, inherited by the sanitized set
FULL_FIELDS = ("task_id", "text", "code", "test_list")
SANITIZED_FIELDS = ("task_id", "prompt", "code", "test_list")

# The function an assert calls first: "assert f(...)", "assert not f(...)",
# "assert set(f(...)) == ...", "assert math.isclose(f(...), ...)".
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_NOT_ENTRY = {"assert", "not", "set", "sorted", "list", "tuple", "dict", "frozenset", "round", "abs",
              "str", "int", "float", "len", "isclose", "math", "sum", "all", "any", "type", "isinstance", "max", "min"}


def mbpp_prompt(text: str, first_test: str) -> str:
    """EvalPlus's and bigcode's MBPP prompt: the task text and first test in a docstring."""
    return f'"""\n{text.strip()}\n{first_test.strip()}\n"""\n'


def entry_point(test_list: list[str], code: str) -> str:
    """The function the tests call, checked against the names the code defines."""
    defined = re.findall(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", code, re.MULTILINE)
    defined += re.findall(r"^\s*class\s+([A-Za-z_]\w*)", code, re.MULTILINE)
    for test in test_list:
        for name in _CALL.findall(test):
            if name in defined:
                return name
    for name in _CALL.findall(test_list[0]) if test_list else ():
        if name not in _NOT_ENTRY:
            return name
    raise DatasetError(
        f"cannot tell which function the tests call ({test_list[:1]!r}). "
        "Each test must be an assert that calls the solution's function."
    )


def check_function(test_list: Iterable[str], setup_code: str = "") -> str:
    """``def check(candidate):`` holding the asserts (and any setup they need)."""
    lines = [line.rstrip() for line in setup_code.replace("\r\n", "\n").split("\n") if line.strip()]
    lines += [t.strip() for t in test_list]
    body = "\n".join(f"    {line}" for line in lines) or "    pass"
    return f"def check(candidate):\n{body}\n"


def item_from_row(row: dict[str, Any], text_field: str) -> Item:
    tests = list(row["test_list"])
    if not tests:
        raise DatasetError(f"MBPP task {row['task_id']} has no tests. Every task needs a test_list.")
    code = str(row["code"])
    imports = "\n".join(row.get("test_imports") or [])
    return Item(
        id=f"Mbpp/{row['task_id']}",  # EvalPlus's ids
        task_type="code",
        prompt=mbpp_prompt(str(row[text_field]), tests[0]),
        reference=code if code.endswith("\n") else code + "\n",
        data={
            "test": check_function(tests, str(row.get("test_setup_code") or "")),
            "entry_point": entry_point(tests, code),
            "test_setup": imports + "\n" if imports else "",
            "format": "mbpp",
        },
    )


def _is_sanitized(spec: DatasetSpec) -> bool:
    return spec.hf_config == "sanitized" or spec.local_path.endswith(".json")


def load(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    sanitized = _is_sanitized(spec)
    fields, text_field = (SANITIZED_FIELDS, "prompt") if sanitized else (FULL_FIELDS, "text")
    local = ctx.local_file(spec)
    if local is not None:
        rows = _read_json_array(local) if local.suffix == ".json" else read_jsonl(local)
        require_fields(rows, fields, local)
        # Upstream files hold every split; keep the test split, in task id order.
        rows = sorted((r for r in rows if int(r["task_id"]) in TEST_IDS), key=lambda r: int(r["task_id"]))
    else:
        rows = load_hub_rows(spec, ctx)  # the hub's "test" split is already ids 11-510
        require_fields(rows, fields, spec.hf_id)
    return [item_from_row(r, text_field) for r in rows]


def _read_json_array(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"dataset file {path} cannot be read as JSON: {e}. Point at sanitized-mbpp.json as published.") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"dataset file {path} must be a JSON array of task objects, as sanitized-mbpp.json is.")
    return data
