"""BFCL (Berkeley Function Calling Leaderboard): question files plus their possible answers.

BFCL ships each category as two JSON-lines files (``.json`` despite being
JSON Lines): the questions (``id``, ``question``, ``function``) and, under
``possible_answer/`` with the same name, the ground truth (``id``,
``ground_truth``).  Local copies are found through the catalog's
``local_path`` under ``--data-dir`` / ``$CODEEVAL_DATA_DIR``; users online get
the two ``hf_files`` from the hub dataset repo.

The suite's shipped sample (fixtures/datasets/function_calling_sample.jsonl)
holds one record per item with the ground truth merged in: ``id``,
``question``, ``function``, ``ground_truth`` (and optionally ``category``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..catalog import DatasetSpec
from ..errors import DatasetError, DatasetUnavailable
from ..items import Item
from .context import LoadContext
from .hub import download_hub_file
from .jsonl import read_jsonl, require_fields

RECORD_FIELDS = ("id", "question", "function", "ground_truth")
QUESTION_FIELDS = ("id", "question", "function")
ANSWER_FIELDS = ("id", "ground_truth")
CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple")


def category_of(item_id: str) -> str:
    """The BFCL category in an id (``simple_python_3``, ``parallel_multiple_0``,
    ``sample_multiple_12``).  BFCL's checker dispatches on the same words."""
    if "parallel_multiple" in item_id:
        return "parallel_multiple"
    if "parallel" in item_id:
        return "parallel"
    if "multiple" in item_id:
        return "multiple"
    return "simple"


def question_text(question: Any) -> str:
    """The user's text: BFCL's ``question`` is a list of turns, each a list of messages."""
    turns = question if isinstance(question, list) else [question]
    texts: list[str] = []
    for turn in turns:
        for message in turn if isinstance(turn, list) else [turn]:
            if isinstance(message, dict) and message.get("role", "user") == "user":
                texts.append(str(message.get("content", "")))
    return "\n".join(texts)


def _ground_truth_value(possible: list[Any], schema: dict[str, Any], required: bool) -> tuple[bool, Any]:
    """(include?, value) for one parameter: its first possible value other than
    "", left out when "" (may be omitted) is among the possibilities, unless
    the schema requires it (a few BFCL items list "" for a required one).
    Dict parameters list the possibilities per key: built key by key."""
    values = [p for p in possible if p != ""]
    if not values or ("" in possible and not required):
        return False, None
    first = values[0]
    kind = schema.get("type")
    if kind == "dict" and isinstance(first, dict):
        return True, _dict_value(first)
    if kind == "array" and schema.get("items", {}).get("type") == "dict" and isinstance(first, list):
        return True, [_dict_value(d) if isinstance(d, dict) else d for d in first]
    return True, first


def _dict_value(possible: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, options in possible.items():
        if isinstance(options, list):
            values = [o for o in options if o != ""]
            if values and "" not in options:
                out[key] = values[0]
        else:
            out[key] = options
    return out


def reference_call(functions: Sequence[dict[str, Any]], ground_truth: Sequence[dict[str, Any]]) -> str:
    """A call string the AST scorer accepts: ``[f(a=1, b='x'), g(c=2.0)]``.

    Each parameter takes its first possible value; optional ones ("" among the
    possibilities) are left out.  Values are Python literals (repr).
    """
    schemas = {f["name"]: f.get("parameters", {}) for f in functions}
    calls: list[str] = []
    for call in ground_truth:
        for name, params in call.items():
            args: list[str] = []
            schema = schemas.get(name, {})
            required = set(schema.get("required", []))
            for param, possible in params.items():
                prop = schema.get("properties", {}).get(param, {})
                include, value = _ground_truth_value(possible, prop, param in required)
                if include:
                    args.append(f"{param}={value!r}")
            calls.append(f"{name}({', '.join(args)})")
    return "[" + ", ".join(calls) + "]"


def item_from_record(row: dict[str, Any]) -> Item:
    """An Item from one BFCL record with its ground truth merged in."""
    item_id = str(row["id"])
    category = row.get("category") or category_of(item_id)
    if category not in CATEGORIES:
        raise DatasetError(
            f"BFCL record {item_id!r}: unknown category {category!r}. Use one of: {', '.join(CATEGORIES)}."
        )
    functions = row["function"]
    if isinstance(functions, dict):  # some BFCL releases give a single function as an object
        functions = [functions]
    ground_truth = row["ground_truth"]
    if not isinstance(ground_truth, list) or not ground_truth:
        raise DatasetError(f"BFCL record {item_id!r}: ground_truth must be a non-empty list of calls.")
    return Item(
        id=item_id,
        task_type="function_calling",
        prompt=question_text(row["question"]),
        reference=reference_call(functions, ground_truth),
        data={
            "functions": functions,
            "ground_truth": ground_truth,
            "category": category,
            "question": row["question"],
        },
    )


def load(spec: DatasetSpec, ctx: LoadContext) -> list[Item]:
    local = ctx.local_file(spec)
    if local is not None:
        answers = local.parent / "possible_answer" / local.name
        if not answers.is_file():
            raise DatasetError(
                f"dataset {spec.name!r}: found the questions at {local} but not their answers at {answers}. "
                "Put BFCL's possible_answer/ folder beside the question file."
            )
        return merge(read_jsonl(local), read_jsonl(answers), local, answers, spec.name)
    if len(spec.hf_files) != 2:
        # nothing online to fall back on: say where the local copy must be
        raise DatasetUnavailable(ctx.missing_message(spec))
    questions_file = download_hub_file(spec, ctx, spec.hf_files[0])
    answers_file = download_hub_file(spec, ctx, spec.hf_files[1])
    q, a = Path(questions_file), Path(answers_file)
    return merge(read_jsonl(q), read_jsonl(a), q, a, spec.name)


def merge(
    questions: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    questions_path: Path | str,
    answers_path_: Path | str,
    dataset: str,
) -> list[Item]:
    """Join questions with their ground truth by id, in question order."""
    require_fields(questions, QUESTION_FIELDS, questions_path)
    require_fields(answers, ANSWER_FIELDS, answers_path_)
    truth = {str(a["id"]): a["ground_truth"] for a in answers}
    items: list[Item] = []
    for row in questions:
        key = str(row["id"])
        if key not in truth:
            raise DatasetError(
                f"dataset {dataset!r}: question {key!r} in {questions_path} has no answer in {answers_path_}. "
                "Use the question and possible_answer files of the same BFCL release."
            )
        items.append(item_from_record({**row, "ground_truth": truth[key]}))
    return items
