"""HumanEval+ and MBPP+ (EvalPlus) from the hub: ``evalplus/humanevalplus``
and ``evalplus/mbppplus``, split ``test``, converted to the code-item shape.

No local copy ships with the suite or ../shared/datasets; a ``local_path``
(catalog, --data-dir) pointing at a JSONL export of the same rows works too.

- humanevalplus rows are HumanEval-shaped (task_id, prompt,
  canonical_solution, test with ``check(candidate)``, entry_point): read as
  HumanEval items.
- mbppplus rows are sanitized-MBPP rows (task_id, prompt = the task text,
  code, test_list, test_imports) plus ``test``: a module-level script with
  EvalPlus's inputs, expected results and comparison helper, which calls
  the function by name.  The prompt becomes EvalPlus's MBPP docstring
  prompt and the script goes into ``check(candidate)``'s body, so the
  sandbox runs it like every other code item.
"""

from __future__ import annotations

import ast
import textwrap
from typing import Any

from ..catalog import DatasetSpec
from ..errors import DatasetError
from ..items import Item
from .context import LoadContext
from .hub import load_hub_rows
from .humaneval import HUMANEVAL_FIELDS
from .humaneval import item_from_record as humaneval_item
from .jsonl import read_jsonl, require_fields
from .mbpp import entry_point, mbpp_prompt

MBPP_PLUS_FIELDS = ("task_id", "prompt", "code", "test_list", "test")


def _is_mbpp(spec: DatasetSpec) -> bool:
    return "mbpp" in (spec.hf_id or spec.name).lower()


def load(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    local = ctx.local_file(spec)
    if local is not None:
        rows = read_jsonl(local)
        where = str(local)
    else:
        rows = load_hub_rows(spec, ctx)  # offline or unreachable: DatasetError naming the dataset and the fix
        where = spec.hf_id
    if _is_mbpp(spec):
        require_fields(rows, MBPP_PLUS_FIELDS, where)
        return [mbpp_plus_item(r) for r in rows]
    require_fields(rows, HUMANEVAL_FIELDS, where)
    return [humaneval_item(r) for r in rows]


def mbpp_plus_item(row: dict[str, Any]) -> Item:
    tests = list(row["test_list"])
    code = str(row["code"])
    text = str(row["prompt"])
    task_id = str(row["task_id"])
    # EvalPlus's own export already holds the docstring prompt; the hub's holds the text.
    prompt = text if text.lstrip().startswith('"""') else mbpp_prompt(text, tests[0])
    imports = "\n".join(row.get("test_imports") or [])
    return Item(
        id=task_id if task_id.startswith("Mbpp/") else f"Mbpp/{task_id}",
        task_type="code",
        prompt=prompt,
        reference=code if code.endswith("\n") else code + "\n",
        data={
            "test": script_as_check(str(row["test"])),
            "entry_point": str(row.get("entry_point") or entry_point(tests, code)),
            "test_setup": imports + "\n" if imports else "",
            "format": "mbpp_plus",
        },
    )


def script_as_check(script: str) -> str:
    """A module-level test script as the body of ``check(candidate)``.

    Indenting is exact unless a multi-line string literal spans lines (its
    text would gain the indent): then the script runs unchanged through
    exec in check's module namespace instead.
    """
    script = script.replace("\r\n", "\n")
    indented = "def check(candidate):\n" + (textwrap.indent(script, "    ", lambda line: True) if script.strip() else "    pass\n")
    try:
        original = ast.parse(script)
        wrapped = ast.parse(indented)
    except SyntaxError as e:
        raise DatasetError(f"an MBPP+ test script does not parse ({e}). Use the evalplus/mbppplus rows as published.") from None
    fn = wrapped.body[0]
    if isinstance(fn, ast.FunctionDef) and ast.dump(ast.Module(body=fn.body, type_ignores=[])) == ast.dump(original):
        return indented if indented.endswith("\n") else indented + "\n"
    # Names the script defines land in the module namespace, where the entry
    # point is bound to the candidate too.
    return f"_EVALPLUS_TEST = {script!r}\n\n\ndef check(candidate):\n    exec(_EVALPLUS_TEST, globals())\n"

