"""BFCL's AST check for function calling (simple, multiple, parallel, parallel_multiple).

This follows the Berkeley Function Calling Leaderboard's published checker
(``bfcl-eval==2026.3.23``: ``bfcl_eval/eval_checker/ast_eval/ast_checker.py``
for the Python categories, ``model_handler/utils.py``'s
``default_decode_ast_prompting`` / ``ast_parse`` / ``resolve_ast_by_type``
for reading a prompting-mode reply), re-implemented here step by step so a
verdict means what it means on the leaderboard.  Where the published code has
quirks we keep them, on purpose, and say so in a comment: the leaderboard's
numbers include them.

Replies are read exactly as BFCL reads them by default: BFCL strips bare
backticks only, so a reply wrapped in a fenced block with a language tag
(```python ... ```), or with prose around a fence, fails to decode, as on
the leaderboard.  The scorer option ``bfcl_strict_format = false`` (catalog
``scorer_options``, or ``--scorer-option=bfcl_strict_format=false``) is the
relaxed reading: such a reply is read from inside its first fence.  Scores
under the relaxed reading are not BFCL's and the report shows the option.
The one deliberate difference that stays: where BFCL would ``eval()`` a
model-written expression (``a=3*4``), we evaluate arithmetic on literals
only, never arbitrary code.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..items import Item, Verdict
from .. import metrics as m
from .base import ScoreContext, Scorer
from .options import Option

# BFCL's PYTHON_TYPE_MAPPING: schema type name -> the Python type a value must have.
PYTHON_TYPE_MAPPING: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
# Types whose items BFCL checks one level deep.
PYTHON_NESTED_TYPE_CHECK_LIST = ("array", "tuple")


class DecodeError(ValueError):
    """The reply is not a Python list of calls (BFCL: ast_decoder:decoder_failed)."""


@dataclass(frozen=True)
class CheckResult:
    valid: bool
    error: str = ""
    error_type: str = ""


_OK = CheckResult(True)


# --------------------------------------------------------------------------
# Reading the reply: default_decode_ast_prompting + ast_parse (Python)
# --------------------------------------------------------------------------

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)


def unfence(text: str) -> str:
    """The body of the first fenced block, when the reply has one; else the text."""
    m = _FENCE.search(text)
    return m.group(1) if m else text


def decode_calls(text: str, strict_format: bool = True) -> list[dict[str, dict[str, Any]]]:
    """``[{func_name: {param: value, ...}}, ...]`` from a reply, as BFCL reads it
    (``strict_format=False``: from inside its first fenced block, if any).

    Raises DecodeError when the reply is not a call or a list of calls.
    """
    if not strict_format:
        text = unfence(text)
    # default_decode_ast_prompting: strip backticks/newlines/spaces, add the brackets
    result = text.strip("`\n ")
    if not result.startswith("["):
        result = "[" + result
    if not result.endswith("]"):
        result = result + "]"
    # ast_parse: drop wrapping single quotes a model may have added
    cleaned = result.strip().strip("'")
    try:
        parsed = ast.parse(cleaned, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        raise DecodeError(f"not a Python list of calls ({type(e).__name__}: {e})") from None
    try:
        if isinstance(parsed.body, ast.Call):
            return [_resolve_call(parsed.body)]
        elts = getattr(parsed.body, "elts", None)
        if elts is None:
            raise DecodeError(f"expected a list of calls, got a {type(parsed.body).__name__} expression")
        calls = []
        for elem in elts:
            if not isinstance(elem, ast.Call):
                raise DecodeError(f"list element {ast.unparse(elem)[:60]!r} is not a function call")
            calls.append(_resolve_call(elem))
        return calls
    except DecodeError:
        raise
    except Exception as e:  # BFCL: any exception while resolving = decoder failed
        raise DecodeError(f"cannot read the call arguments ({type(e).__name__}: {e})") from None


def _resolve_call(elem: ast.Call) -> dict[str, dict[str, Any]]:
    # Dotted names (math.factorial) keep their dots. Positional arguments are
    # ignored, as in BFCL: only keyword arguments count.
    parts: list[str] = []
    func: ast.expr = elem.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    name = ".".join(reversed(parts))
    args: dict[str, Any] = {}
    for kw in elem.keywords:
        # f(**x) gives the key None, as in BFCL; the checker then rejects it
        args[kw.arg] = _resolve_value(kw.value)  # type: ignore[index]
    return {name: args}


def _resolve_value(node: ast.expr) -> Any:
    """BFCL's resolve_ast_by_type, without eval()."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):
        # BFCL computes ``-node.operand.value`` whatever the operator: +5 and ~5
        # both read as -5, ``not True`` as -1, and a non-literal operand fails.
        # Kept: the leaderboard's numbers include it.
        if not isinstance(node.operand, ast.Constant):
            raise DecodeError(f"unsupported unary operand in {ast.unparse(node)!r}")
        return -node.operand.value
    if isinstance(node, ast.List):
        return [_resolve_value(v) for v in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                raise DecodeError("{**x} is not a literal dict")
            out[_resolve_value(k)] = _resolve_value(v)
        return out
    if isinstance(node, ast.BinOp):
        # BFCL eval()s the expression; we evaluate arithmetic on literals only.
        return _safe_arith(node)
    if isinstance(node, ast.Name):
        # A bare name is read as its own text (a "variable"), as in BFCL.
        return node.id
    if isinstance(node, ast.Call):
        # A nested call: its source text without keywords, else {name: {kwargs}}.
        return ast.unparse(node) if not node.keywords else _resolve_call(node)
    if isinstance(node, ast.Tuple):
        return tuple(_resolve_value(v) for v in node.elts)
    if isinstance(node, ast.Lambda):
        # BFCL's branch evaluates ``node.body[0]``, which always raises.
        raise DecodeError("a lambda is not a literal argument")
    if isinstance(node, ast.Subscript):
        return ast.unparse(node.value) + "[" + ast.unparse(node.slice) + "]"
    raise DecodeError(f"unsupported argument expression {type(node).__name__}")


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_MAX_SEQ = 100_000  # bounds "x" * n and [0] * n, so a reply cannot exhaust memory


def _safe_arith(node: ast.expr) -> Any:
    """The value of an arithmetic expression over literals (what eval() would give)."""
    if isinstance(node, ast.Constant) and not isinstance(node.value, type(Ellipsis)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_safe_arith(v) for v in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _safe_arith(node.operand)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _safe_arith(node.left), _safe_arith(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 1000:
            raise DecodeError(f"exponent too large in {ast.unparse(node)!r}")
        if isinstance(node.op, ast.Mult):
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > _MAX_SEQ:
                    raise DecodeError(f"expression too large: {ast.unparse(node)!r}")
        if isinstance(node.op, ast.Mod) and isinstance(left, (str, bytes)):
            # printf-style formatting can ask for a huge width: not evaluated
            raise DecodeError(f"string formatting is not a literal: {ast.unparse(node)!r}")
        try:
            return _BINOPS[type(node.op)](left, right)
        except Exception as e:  # ZeroDivisionError, TypeError, OverflowError: eval() fails too
            raise DecodeError(f"cannot evaluate {ast.unparse(node)!r}: {e}") from None
    # eval() would raise NameError here (names, calls): the decoder fails in BFCL too
    raise DecodeError(f"cannot evaluate {ast.unparse(node)!r} as a literal expression")


def render_calls(calls: Sequence[dict[str, dict[str, Any]]]) -> str:
    """A call list as text: ``[f(a=1), g(b='x')]`` (what Verdict.extracted records)."""
    parts = []
    for call in calls:
        for name, args in call.items():
            parts.append(f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")")
    return "[" + ", ".join(parts) + "]"


# --------------------------------------------------------------------------
# The checker (ast_checker.py, Python language)
# --------------------------------------------------------------------------


def standardize_string(text: str) -> str:
    """BFCL: drop spaces and ``,./-_*^``, lowercase, and ' -> \" (so "April 1, 2024" == "april 1 2024")."""
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


def convert_func_name(name: str, underscore_to_dot: bool) -> str:
    """BFCL renames ``a.b`` to ``a_b`` for models whose API forbids dots in
    tool names (OpenAI, Mistral, Gemini in FC mode).  Prompting mode, which
    this suite uses, keeps the dots (underscore_to_dot = False)."""
    return re.sub(r"\.", "_", name) if underscore_to_dot and "." in name else name


def ast_check(
    functions: Sequence[dict[str, Any]],
    calls: Sequence[dict[str, dict[str, Any]]],
    ground_truth: Sequence[dict[str, dict[str, Any]]],
    category: str,
    underscore_to_dot: bool = False,
) -> CheckResult:
    """BFCL's ast_checker: dispatch on the category name as BFCL does."""
    if "parallel" in category:
        return _parallel_no_order(functions, calls, ground_truth, underscore_to_dot)
    if "multiple" in category:
        return _multiple(functions, calls, ground_truth, underscore_to_dot)
    if len(calls) != 1:
        return CheckResult(False, f"expected 1 call, got {len(calls)}", "simple_function_checker:wrong_count")
    return simple_function_checker(functions[0], calls[0], ground_truth[0], underscore_to_dot)


def _find_description(functions: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    for fn in functions:
        if fn["name"] == name:
            return fn
    raise ValueError(f"the ground truth names function {name!r}, which the item does not define")


def _multiple(functions, calls, ground_truth, underscore_to_dot) -> CheckResult:
    if len(calls) != len(ground_truth):
        return CheckResult(
            False, f"expected {len(ground_truth)} call(s), got {len(calls)}", "multiple_function_checker:wrong_count"
        )
    expected = next(iter(ground_truth[0]))
    return simple_function_checker(_find_description(functions, expected), calls[0], ground_truth[0], underscore_to_dot)


def _parallel_no_order(functions, calls, ground_truth, underscore_to_dot) -> CheckResult:
    """Each expected call must match a distinct model call, in any order.

    Matching is greedy in ground-truth order, first unmatched model call that
    passes wins, exactly as BFCL's parallel_function_checker_no_order does.
    """
    if len(calls) != len(ground_truth):
        return CheckResult(
            False,
            f"expected {len(ground_truth)} calls, got {len(calls)}",
            "parallel_function_checker_no_order:wrong_count",
        )
    matched: set[int] = set()
    for i, expected_call in enumerate(ground_truth):
        expected = next(iter(expected_call))
        description = _find_description(functions, expected)
        errors: list[str] = []
        found = False
        for index, call in enumerate(calls):
            if index in matched:
                continue
            result = simple_function_checker(description, call, expected_call, underscore_to_dot)
            if result.valid:
                matched.add(index)
                found = True
                break
            errors.append(f"call {index}: {result.error}")
        if not found:
            return CheckResult(
                False,
                f"no model call matches expected call {i} ({expected}): " + "; ".join(errors),
                "parallel_function_checker_no_order:cannot_find_match",
            )
    return _OK


def simple_function_checker(
    description: dict[str, Any],
    call: dict[str, dict[str, Any]],
    expected_call: dict[str, dict[str, Any]],
    underscore_to_dot: bool = False,
) -> CheckResult:
    """One model call against one function schema and its possible answers."""
    possible = next(iter(expected_call.values()))
    func_name = convert_func_name(description["name"], underscore_to_dot)
    properties = description["parameters"]["properties"]
    required = description["parameters"].get("required", [])

    if func_name not in call:
        got = ", ".join(call) or "nothing"
        return CheckResult(False, f"wrong function: expected {func_name}, got {got}", "simple_function_checker:wrong_func_name")
    params = call[func_name]

    for param in required:
        if param not in params:
            return CheckResult(False, f"{func_name}: missing required parameter {param!r}", "simple_function_checker:missing_required")

    for param, value in params.items():
        if param not in properties or param not in possible:
            return CheckResult(False, f"{func_name}: unexpected parameter {param!r}", "simple_function_checker:unexpected_param")
        type_name = properties[param].get("type")
        if type_name not in PYTHON_TYPE_MAPPING:
            return CheckResult(False, f"{func_name}: parameter {param!r} has unsupported schema type {type_name!r}", "type_error:schema")
        expected_type = PYTHON_TYPE_MAPPING[type_name]
        nested_type = None
        if type_name in PYTHON_NESTED_TYPE_CHECK_LIST:
            item_type = properties[param].get("items", {}).get("type")
            if item_type not in PYTHON_TYPE_MAPPING:
                return CheckResult(False, f"{func_name}: parameter {param!r} has unsupported item type {item_type!r}", "type_error:schema")
            nested_type = PYTHON_TYPE_MAPPING[item_type]

        # BFCL turns tuples into lists for "tuple" parameters (the possible
        # answers went through JSON, where tuples are lists).
        if type_name == "tuple" and type(value) is tuple:
            value = list(value)
        # int is accepted for float
        if type_name == "float" and type(value) is int:
            value = float(value)

        type_result, is_variable = _type_checker(param, value, possible[param], type_name, expected_type, nested_type)
        if not type_result.valid:
            return CheckResult(False, f"{func_name}: {type_result.error}", type_result.error_type)

        if not is_variable:
            if expected_type is dict:
                result = _dict_checker(param, value, possible[param])
            elif expected_type is list and nested_type is dict:
                result = _list_dict_checker(param, value, possible[param])
            elif expected_type is str:
                result = _string_checker(param, value, possible[param])
            elif expected_type is list:
                result = _list_checker(param, value, possible[param])
            else:
                result = None
            if result is not None:
                if not result.valid:
                    return CheckResult(False, f"{func_name}: {result.error}", result.error_type)
                continue

        if value not in possible[param]:
            return CheckResult(
                False,
                f"{func_name}: wrong value for {param!r}: {value!r}, expected one of {possible[param]!r}",
                "value_error:others",
            )

    for param in possible:
        if param not in params and "" not in possible[param]:
            return CheckResult(
                False,
                f"{func_name}: parameter {param!r} not given, and the answer needs it",
                "simple_function_checker:missing_optional",
            )
    return _OK


def _possible_answer_type(possible: list[Any]) -> type | None:
    for answer in possible:
        if answer != "":  # "" marks "may be omitted"
            return type(answer)
    return None


def _type_checker(
    param: str, value: Any, possible: list[Any], type_name: str, expected_type: type, nested_type: type | None
) -> tuple[CheckResult, bool]:
    """BFCL's type_checker: (result, is_variable).

    ``is_variable``: the possible answers hold a value of another type than the
    schema's (a variable name written as a string); the value is then compared
    as is, without string normalisation.
    """
    is_variable = False
    answer_type = _possible_answer_type(possible)
    if answer_type is not None and answer_type is not expected_type:
        is_variable = True

    if type(value) is expected_type:
        if nested_type is None:
            return _OK, is_variable
        for possible_item in possible:
            ok = True  # BFCL: an item that is not a list ("" optional) passes
            if type(possible_item) is list:
                for value_item in value:
                    inner, _ = _type_checker(param, value_item, possible_item, str(nested_type), nested_type, None)
                    if not inner.valid:
                        ok = False
                        break
            if ok:
                return _OK, is_variable
        # falls through, as in BFCL: a list whose items have the wrong type
        nested_error = CheckResult(
            False,
            f"parameter {param!r}: items of {value!r} are not all of type {nested_type.__name__}",
            "type_error:nested",
        )
        if answer_type is not None and type(value) is answer_type:
            return nested_error, True
        return nested_error, False

    if answer_type is not None and type(value) is answer_type:
        return _OK, True
    return (
        CheckResult(
            False,
            f"parameter {param!r}: expected type {type_name}, got {type(value).__name__} ({value!r})",
            "type_error:simple",
        ),
        False,
    )


def _string_checker(param: str, value: str, possible: list[Any]) -> CheckResult:
    wanted = [standardize_string(p) for p in possible if type(p) is str]
    if standardize_string(value) not in wanted:
        return CheckResult(
            False, f"wrong value for {param!r}: {value!r}, expected one of {possible!r} (normalised)", "value_error:string"
        )
    return _OK


def _standardize_list(items: Any) -> list[Any]:
    # BFCL iterates each possible answer with range(len(...)): an optional ""
    # becomes [] here, so an empty list matches an optional parameter.
    return [standardize_string(x) if type(x) is str else x for x in (items[j] for j in range(len(items)))]


def _list_checker(param: str, value: list[Any], possible: list[Any]) -> CheckResult:
    got = [standardize_string(x) if type(x) is str else x for x in value]
    wanted = [_standardize_list(p) for p in possible]
    if got not in wanted:
        return CheckResult(False, f"wrong value for {param!r}: {value!r}, expected one of {possible!r}", "value_error:list/tuple")
    return _OK


def _dict_checker(param: str, value: dict[Any, Any], possible_answers: list[Any]) -> CheckResult:
    """A dict value against each possible dict (whose values are lists of possibilities)."""
    result = CheckResult(False, f"no possible value for {param!r}", "dict_checker:unclear")
    for possible in possible_answers:
        if possible == "":
            continue
        result = _OK
        for key, item in value.items():
            if key not in possible:
                result = CheckResult(False, f"{param!r}: unexpected dict key {key!r}", "value_error:dict_key")
                break
            std = standardize_string(item) if type(item) is str else item
            wanted = [standardize_string(p) if type(p) is str else p for p in possible[key]]
            if std not in wanted:
                result = CheckResult(
                    False, f"{param!r}: wrong value for dict key {key!r}: {item!r}, expected one of {wanted!r}", "value_error:dict_value"
                )
                break
        # BFCL checks missing keys after the loop above, even when it already failed
        if result.valid:
            for key, options in possible.items():
                if key not in value and "" not in options:
                    result = CheckResult(False, f"{param!r}: missing dict key {key!r}", "value_error:dict_key")
                    break
        if result.valid:
            return _OK
    return result


def _list_dict_checker(param: str, value: list[Any], possible_answers: list[Any]) -> CheckResult:
    """A list of dicts: same length and each dict valid, in order."""
    result = CheckResult(False, f"no possible value for {param!r}", "list_dict_checker:unclear")
    for possible in possible_answers:
        if len(value) != len(possible):
            result = CheckResult(False, f"{param!r}: wrong number of dicts in the list", "value_error:list_dict_count")
            continue
        ok = True
        for i in range(len(value)):
            result = _dict_checker(param, value[i], [possible[i]])
            if not result.valid:
                ok = False
                break
        if ok:
            return _OK
    return result


# --------------------------------------------------------------------------
# The scorer
# --------------------------------------------------------------------------


class BfclAstScorer(Scorer):
    """BFCL's AST accuracy: a sample passes when its calls match the possible answers.

    Options (``ctx.options``): ``bfcl_strict_format`` (default true: read
    replies exactly as BFCL does; false: the relaxed reading, from inside a
    fenced block); ``bfcl_underscore_to_dot`` (expect ``a_b`` for a function
    named ``a.b``, as BFCL does for FC-mode API models).
    """

    name = "bfcl_ast"
    # 2: strict format by default (1 unwrapped fences by default)
    version = "2"
    options = {
        "bfcl_strict_format": Option(bool, True, "read replies exactly as BFCL does; false reads a reply from "
                                     "inside its first fenced block (not BFCL's scoring)"),
        "bfcl_underscore_to_dot": Option(bool, False, "expect a_b for a function named a.b, as BFCL does for "
                                         "FC-mode API models"),
    }
    primary_metric = "accuracy"
    # accuracy and format_ok over all samples, plus accuracy per BFCL
    # category when a dataset mixes several (the shipped sample does).
    metrics = (m.accuracy(), m.mean("format_ok"), m.accuracy_by("category", "simple"))

    def score(self, items: Sequence[Item], answers: Sequence[Sequence[str]], ctx: ScoreContext) -> list[list[Verdict]]:
        strict = bool(ctx.options.get("bfcl_strict_format", self.options["bfcl_strict_format"].default))
        underscore = bool(ctx.options.get("bfcl_underscore_to_dot", self.options["bfcl_underscore_to_dot"].default))
        return [
            [self.score_one(item, j, text, strict, underscore) for j, text in enumerate(samples)]
            for item, samples in zip(items, answers)
        ]

    def score_one(self, item: Item, sample: int, text: str, strict: bool = True, underscore: bool = False) -> Verdict:
        if not text.strip():
            return Verdict(item.id, sample, False, "no_answer", "empty reply", scores={"format_ok": 0.0})
        try:
            calls = decode_calls(text, strict_format=strict)
        except DecodeError as e:
            return Verdict(item.id, sample, False, "no_answer", f"not a list of calls: {e}", scores={"format_ok": 0.0})
        try:
            result = ast_check(
                item.data["functions"], calls, item.data["ground_truth"], item.data["category"], underscore_to_dot=underscore
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            # a possible answer or schema of a shape the checker does not know
            # (BFCL's own run would stop here): this sample fails, the run goes on
            result = CheckResult(False, f"checker error: {type(e).__name__}: {e}", "checker_error")
        return Verdict(
            item.id,
            sample,
            result.valid,
            "passed" if result.valid else "failed",
            result.error,
            scores={"format_ok": 1.0},
            extracted=render_calls(calls),
        )
