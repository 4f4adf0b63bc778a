"""Function calling: the BFCL loader, prompt, AST scorer, the shipped sample,
and fidelity with BFCL's own checker.

The real BFCL files come from ../shared/datasets (or $CODEEVAL_DATA_DIR) and
are never copied into the repo.  The official checker (``bfcl-eval``) cannot
be a normal dependency: its requirements pin numpy 1.26 and pull in a dozen
API SDKs.  Installed with ``--no-deps`` into its own folder (see
BFCL_EVAL_INSTALL below) it imports, and the fidelity tests run it in a
subprocess with that folder on PYTHONPATH, so nothing of it leaks into this
process.  Without that folder they skip, saying how to get it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, SHARED_DATASETS
from pytest_codeeval.catalog import load_catalog
from pytest_codeeval.datasets import load_dataset
from pytest_codeeval.datasets.bfcl import RECORD_FIELDS, category_of, item_from_record, reference_call
from pytest_codeeval.datasets.context import LoadContext
from pytest_codeeval.errors import DatasetError
from pytest_codeeval.items import Item
from pytest_codeeval.prompts import function_calling as fc_prompts
from pytest_codeeval.prompts import template_hash
from pytest_codeeval.scoring import get_scorer
from pytest_codeeval.scoring.base import ScoreContext
from pytest_codeeval.scoring.bfcl import BfclAstScorer, DecodeError, decode_calls, render_calls, standardize_string

DATA_DIR = Path(os.environ.get("CODEEVAL_DATA_DIR") or SHARED_DATASETS)
needs_data = pytest.mark.skipif(not (DATA_DIR / "bfcl").is_dir(), reason=f"no BFCL copy under {DATA_DIR}")
PUBLIC = {"bfcl_simple": 400, "bfcl_multiple": 200, "bfcl_parallel": 200, "bfcl_parallel_multiple": 200}
SAMPLE = REPO / "fixtures" / "datasets" / "function_calling_sample.jsonl"
WRONG = REPO / "tests" / "data" / "wrong_answers" / "function_calling_sample.jsonl"

# Where the official checker lives: $BFCL_EVAL_PATH, else this cache folder.
BFCL_EVAL_PATH = Path(os.environ.get("BFCL_EVAL_PATH") or Path.home() / ".cache" / "pytest-codeeval" / "bfcl-eval")
BFCL_EVAL_INSTALL = (
    f"pip install --no-deps --target {BFCL_EVAL_PATH} bfcl-eval==2026.3.23 tree_sitter==0.21.3 "
    "tree-sitter-java==0.21.0 tree-sitter-javascript==0.21.4 tenacity overrides cohere==5.18.0 httpx_sse "
    "fastavro google-genai google-auth mistralai==1.7.0 qwen-agent json5 soundfile dashscope websocket-client "
    "writer-sdk distro datamodel_code_generator"
)
# A prompting-mode model (keeps dotted names) and an FC-mode one (a.b -> a_b).
PROMPTING_MODEL = "gorilla-openfunctions-v2"
FC_MODEL = "gpt-4.1-2025-04-14-FC"


# ---------------------------------------------------------------- helpers


def load(name: str, data_dir: Path | None = DATA_DIR) -> list[Item]:
    return load_dataset(load_catalog().dataset(name), LoadContext(data_dir=data_dir))


def score(items: list[Item], texts: list[str], **options: Any) -> list[bool]:
    verdicts = BfclAstScorer().score(items, [[t] for t in texts], ScoreContext(options=options))
    return [row[0].passed for row in verdicts]


def _bump(value: Any) -> Any:
    """A value of the same type that no possible-answer list holds."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1000003
    if isinstance(value, float):
        return value + 1000.25
    if isinstance(value, str):
        return value + " qzx"
    if isinstance(value, list):
        return value + ([value[-1]] if value else ["qzx"])
    if isinstance(value, tuple):
        return value + (value[-1],) if value else ("qzx",)
    if isinstance(value, dict):
        return {**value, "qzx_key": 1}
    return "qzx"


def corruptions(item: Item) -> list[tuple[str, str]]:
    """Deliberately wrong answers derived from the reference: (kind, text)."""
    calls = decode_calls(item.reference)
    first_name = next(iter(calls[0]))
    first_args = calls[0][first_name]
    schema = next(f for f in item.data["functions"] if f["name"] == first_name)
    out: list[tuple[str, str]] = []

    def with_first(name: str, args: dict[str, Any]) -> str:
        return render_calls([{name: args}] + calls[1:])

    out.append(("wrong_function", with_first(first_name + "_v2", first_args)))
    required = [p for p in schema["parameters"].get("required", []) if p in first_args]
    if required:
        out.append(("missing_required", with_first(first_name, {k: v for k, v in first_args.items() if k != required[0]})))
    out.append(("unexpected_param", with_first(first_name, {**first_args, "zz_unexpected": 1})))
    if first_args:
        key = next(iter(first_args))
        out.append(("wrong_value", with_first(first_name, {**first_args, key: _bump(first_args[key])})))
        out.append(("wrong_type", with_first(first_name, {**first_args, key: [first_args[key], first_args[key]]})))
    if len(calls) > 1:
        out.append(("missing_call", render_calls(calls[:-1])))
    out.append(("extra_call", render_calls(calls + calls[:1])))
    out.append(("prose", "Sure! Here is the call: " + item.reference))
    return out


def variants(item: Item) -> list[tuple[str, str]]:
    """Rewrites of the reference that BFCL's rules may accept: calls in reverse
    order, integral floats written as ints, strings in upper case, a bare call
    without brackets, a bare ``` fence."""
    calls = decode_calls(item.reference)

    def rewrite(value: Any, how: str) -> Any:
        if how == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        if how == "upper" and isinstance(value, str):
            return value.upper()
        if isinstance(value, list):
            return [rewrite(v, how) for v in value]
        if isinstance(value, dict):
            return {k: rewrite(v, how) for k, v in value.items()}
        return value

    out = [("reversed", render_calls(calls[::-1]))]
    for how in ("int", "upper"):
        out.append((how, render_calls([{n: {k: rewrite(v, how) for k, v in a.items()} for n, a in c.items()} for c in calls])))
    if len(calls) == 1:
        out.append(("bare_call", item.reference[1:-1]))
    out.append(("bare_fence", "```\n" + item.reference + "\n```"))
    return out


# ---------------------------------------------------------------- loader


@needs_data
@pytest.mark.parametrize("name", list(PUBLIC))
def test_loader_reads_each_public_set(name: str) -> None:
    items = load(name)
    assert len(items) == PUBLIC[name]
    expected_category = name.removeprefix("bfcl_")
    for item in items:
        assert item.task_type == "function_calling"
        assert item.data["category"] == expected_category
        assert item.prompt.strip() and item.data["functions"] and item.data["ground_truth"]
        assert item.reference.startswith("[") and item.reference.endswith("]")
    # ground truth joined by id, not by line position
    assert items[0].id.endswith("_0") and len({i.id for i in items}) == len(items)


def test_category_follows_bfcl_ids() -> None:
    assert category_of("simple_python_12") == "simple"
    assert category_of("simple_7") == "simple"  # v3 naming
    assert category_of("multiple_3") == "multiple"
    assert category_of("parallel_9") == "parallel"
    assert category_of("parallel_multiple_0") == "parallel_multiple"


def test_missing_offline_names_the_dataset_and_the_fix(tmp_path: Path) -> None:
    spec = load_catalog().dataset("bfcl_parallel")
    with pytest.raises(DatasetError) as err:
        load_dataset(spec, LoadContext(data_dir=tmp_path, offline=True))
    message = str(err.value)
    assert "bfcl_parallel" in message and "--data-dir" in message and "bfcl/BFCL_v4_parallel.json" in message


def test_questions_without_their_answers_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bfcl").mkdir()
    record = {"id": "simple_python_0", "question": [[{"role": "user", "content": "hi"}]], "function": []}
    (tmp_path / "bfcl" / "BFCL_v4_simple_python.json").write_text(json.dumps(record))
    with pytest.raises(DatasetError, match="possible_answer"):
        load("bfcl_simple", data_dir=tmp_path)


def test_a_question_with_no_answer_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bfcl" / "possible_answer").mkdir(parents=True)
    record = {"id": "simple_python_0", "question": [[{"role": "user", "content": "hi"}]], "function": []}
    (tmp_path / "bfcl" / "BFCL_v4_simple_python.json").write_text(json.dumps(record))
    (tmp_path / "bfcl" / "possible_answer" / "BFCL_v4_simple_python.json").write_text(
        json.dumps({"id": "simple_python_1", "ground_truth": [{"f": {}}]})
    )
    with pytest.raises(DatasetError, match="simple_python_0.*has no answer"):
        load("bfcl_simple", data_dir=tmp_path)


def test_reference_leaves_out_optional_parameters_and_builds_dicts() -> None:
    functions = [{"name": "f", "parameters": {"type": "dict", "required": ["a", "c"], "properties": {
        "a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}, "d": {"type": "dict"}}}}]
    truth = [{"f": {"a": [3, 4], "b": ["", "x"], "c": [True, ""], "d": [{"k": ["v", "w"], "opt": ["", 1]}]}}]
    # "" among c's options but c is required (a few BFCL items do this): kept
    assert reference_call(functions, truth) == "[f(a=3, c=True, d={'k': 'v'})]"


# ---------------------------------------------------------------- references and corruptions on the real sets


@needs_data
@pytest.mark.parametrize("name", list(PUBLIC))
def test_every_public_reference_scores_100_percent(name: str) -> None:
    items = load(name)
    passed = score(items, [i.reference for i in items])
    assert [i.id for i, ok in zip(items, passed) if not ok] == []


@needs_data
@pytest.mark.parametrize("name", list(PUBLIC))
def test_every_corrupted_public_answer_fails(name: str) -> None:
    items = load(name)
    cases = [(item, kind, text) for item in items for kind, text in corruptions(item)]
    passed = score([c[0] for c in cases], [c[2] for c in cases])
    wrongly_passed = [(item.id, kind, text) for (item, kind, text), ok in zip(cases, passed) if ok]
    assert wrongly_passed == []
    assert len(cases) >= 6 * len(items)


# ---------------------------------------------------------------- the shipped sample


def sample_items() -> list[Item]:
    return load("function_calling_sample", data_dir=None)


def test_sample_covers_the_categories_and_types() -> None:
    items = sample_items()
    assert len(items) >= 60
    categories = {i.data["category"] for i in items}
    assert categories == {"simple", "multiple", "parallel", "parallel_multiple"}
    per = {c: sum(i.data["category"] == c for i in items) for c in categories}
    assert per["simple"] >= 15 and per["multiple"] >= 10 and per["parallel"] >= 10 and per["parallel_multiple"] >= 5
    types = {p["type"] for i in items for f in i.data["functions"] for p in f["parameters"]["properties"].values()}
    assert {"integer", "float", "string", "boolean", "array", "dict", "tuple", "any"} <= types
    enums = [p for i in items for f in i.data["functions"] for p in f["parameters"]["properties"].values() if "enum" in p]
    optional = [v for i in items for c in i.data["ground_truth"] for a in c.values() for v in a.values() if "" in v]
    assert enums and optional
    for line in SAMPLE.read_text().splitlines():
        assert set(RECORD_FIELDS) <= set(json.loads(line))


def test_sample_references_score_100_percent() -> None:
    items = sample_items()
    assert score(items, [i.reference for i in items]) == [True] * len(items)


def test_every_sample_near_miss_fails_and_every_item_has_one() -> None:
    items = {i.id: i for i in sample_items()}
    wrong = [json.loads(line) for line in WRONG.read_text().splitlines() if line.strip()]
    assert {w["task_id"] for w in wrong} == set(items)
    scorer = BfclAstScorer()
    for w in wrong:
        verdict = scorer.score_one(items[w["task_id"]], 0, w["completion"])
        assert not verdict.passed, w
        assert verdict.verdict == "failed" and verdict.detail, w  # parsed, then rejected with a reason


def test_sample_corruptions_fail_too() -> None:
    items = sample_items()
    cases = [(item, text) for item in items for _, text in corruptions(item)]
    assert not any(score([c[0] for c in cases], [c[1] for c in cases]))


def test_sample_record_builds_an_item() -> None:
    row = json.loads(SAMPLE.read_text().splitlines()[0])
    item = item_from_record(row)
    assert item.id == row["id"] and item.data["ground_truth"] == row["ground_truth"]


# ---------------------------------------------------------------- the checker's rules, by hand

FUNCS = [
    {"name": "geo.distance", "description": "d", "parameters": {"type": "dict", "required": ["a", "b"], "properties": {
        "a": {"type": "string"}, "b": {"type": "string"}, "unit": {"type": "string", "enum": ["km", "mi"]},
        "scale": {"type": "float"}, "stops": {"type": "array", "items": {"type": "integer"}}}}},
    {"name": "other", "description": "o", "parameters": {"type": "dict", "required": ["x"], "properties": {"x": {"type": "integer"}}}},
]
TRUTH = [{"geo.distance": {"a": ["New York, NY"], "b": ["Boston"], "unit": ["", "km"], "scale": [2.0], "stops": [[1, 2]]}}]


def hand_item(category: str = "simple", truth: list[dict[str, Any]] = TRUTH) -> Item:
    return Item(id=f"{category}_0", task_type="function_calling", prompt="q", reference="",
                data={"functions": FUNCS, "ground_truth": truth, "category": category})


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("[geo.distance(a='New York, NY', b='Boston', scale=2.0, stops=[1, 2])]", True),
        ("geo.distance(a='New York, NY', b='Boston', scale=2.0, stops=[1, 2])", True),  # bare call
        ("```\n[geo.distance(a='new york ny', b='BOSTON', scale=2, stops=[1, 2])]\n```", True),  # bare fence, case, int for float
        ("```python\n[geo.distance(a='New York, NY', b='Boston', scale=2.0, stops=[1, 2])]\n```", False),  # tagged fence: BFCL fails it
        ("[geo.distance(a='New York, NY', b='Boston', unit='km', scale=2.0, stops=[1, 2])]", True),  # optional given
        ("[geo.distance(a='New York, NY', b='Boston', unit='mi', scale=2.0, stops=[1, 2])]", False),
        ("[geo.distance(a='New York, NY', scale=2.0, stops=[1, 2])]", False),  # missing required
        ("[geo.distance(a='New York, NY', b='Boston', stops=[1, 2])]", False),  # missing a needed optional
        ("[geo.distance(a='New York, NY', b='Boston', scale=2.0, stops=[1, 2], z=1)]", False),  # unexpected
        ("[geo.distance(a='New York, NY', b='Boston', scale=2.0, stops=(1, 2))]", False),  # tuple for array
        ("[geo.distance(a='New York, NY', b='Boston', scale='2.0', stops=[1, 2])]", False),  # str for float
        ("[geo_distance(a='New York, NY', b='Boston', scale=2.0, stops=[1, 2])]", False),  # dots kept in prompting mode
        ("[other(x=1)]", False),
        ("I would call geo.distance here.", False),
        ("", False),
    ],
)
def test_simple_rules(text: str, ok: bool) -> None:
    assert score([hand_item()], [text]) == [ok]


def test_fc_mode_expects_underscored_names() -> None:
    text = "[geo_distance(a='New York, NY', b='Boston', scale=2.0, stops=[1, 2])]"
    assert score([hand_item()], [text], bfcl_underscore_to_dot=True) == [True]


def test_strict_format_is_the_default_and_the_relaxed_reading_an_option() -> None:
    """BFCL strips bare backticks only: a fence with a language tag, or prose
    around a fence, fails by default, as on the leaderboard; the relaxed
    reading (bfcl_strict_format=false) reads inside the fence."""
    fenced = "```python\n[other(x=1)]\n```"
    prose = "Here you go:\n```\n[other(x=1)]\n```\nDone."
    item = hand_item("multiple", [{"other": {"x": [1]}}])
    assert score([item, item], [fenced, prose]) == [False, False]
    assert score([item, item], [fenced, prose], bfcl_strict_format=True) == [False, False]
    assert score([item, item], [fenced, prose], bfcl_strict_format=False) == [True, True]
    assert score([item], ["```\n[other(x=1)]\n```"]) == [True]  # a bare fence is BFCL's too


def test_parallel_matches_in_any_order_each_call_once() -> None:
    truth = [{"other": {"x": [1]}}, {"other": {"x": [2]}}]
    item = hand_item("parallel", truth)
    assert score([item] * 4, ["[other(x=2), other(x=1)]", "[other(x=1), other(x=2)]", "[other(x=1), other(x=1)]", "[other(x=1)]"]) == [
        True, True, False, False]


def test_multiple_needs_the_right_function() -> None:
    item = hand_item("multiple", [{"other": {"x": [5]}}])
    assert score([item] * 2, ["[other(x=5)]", "[geo.distance(a='a', b='b')]"]) == [True, False]


def test_standardize_string_is_bfcls() -> None:
    assert standardize_string("April 1, 2024") == standardize_string("april 1 2024") == "april12024"
    assert standardize_string("it's") == 'it"s'


def test_decoder_quirks_and_safety() -> None:
    assert decode_calls("[f(a=-3, b=2*3, c=x, d=g(1), e=h(k=1))]") == [{"f": {"a": -3, "b": 6, "c": "x", "d": "g(1)", "e": {"h": {"k": 1}}}}]
    assert decode_calls("[f(a=+3)]") == [{"f": {"a": -3}}]  # BFCL negates any unary operand
    for bad in ("[f(a=__import__('os').getcwd() + 1)]", "[f(a='x' * 10**9)]", "[f(a=lambda: 1)]", "[f(a={1, 2})]", "[1, 2]"):
        with pytest.raises(DecodeError):
            decode_calls(bad)


def test_verdict_records_extraction_and_format_metric() -> None:
    item = hand_item("multiple", [{"other": {"x": [1]}}])
    scorer = get_scorer("bfcl_ast")
    rows = scorer.score([item], [["[other(x=1)]", "no call", "[other(x=3)]"]], ScoreContext())
    assert [v.verdict for v in rows[0]] == ["passed", "no_answer", "failed"]
    assert rows[0][0].extracted == "[other(x=1)]" and "x" in rows[0][2].detail
    metrics = scorer.aggregate([item], rows, ScoreContext())
    assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["format_ok"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- prompt


def test_chat_prompt_holds_schemas_and_the_call_format() -> None:
    item = sample_items()[0]
    prompt = fc_prompts.build(item, chat=True, system_prompt="Be brief.")
    system, user = prompt.messages
    assert system["role"] == "system" and user == {"role": "user", "content": item.prompt}
    assert "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]" in system["content"]
    schemas = json.loads(system["content"].split("that you can invoke.\n", 1)[1].rsplit("\n\nBe brief.", 1)[0])
    assert [s["name"] for s in schemas] == [f["name"] for f in item.data["functions"]]
    assert schemas[0]["description"].endswith(fc_prompts.PYTHON_HINT)
    assert system["content"].endswith("\n\nBe brief.")


def test_base_prompt_is_text_with_stops() -> None:
    item = sample_items()[0]
    prompt = fc_prompts.build(item, chat=False, system_prompt="")
    assert prompt.messages is None and prompt.text.endswith(f"Question: {item.prompt}\nAnswer:")
    assert prompt.stop == fc_prompts.BASE_STOPS
    assert len(template_hash("function_calling")) == 16


# ---------------------------------------------------------------- fidelity with bfcl-eval's checker

# Runs in a subprocess with bfcl-eval on its path: cases in on stdin, verdicts out.
OFFICIAL = r"""
import json, sys
from bfcl_eval.constants.enums import Language, ReturnFormat
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
from bfcl_eval.model_handler.utils import default_decode_ast_prompting, formulate_system_prompt
from bfcl_eval.constants.default_prompts import DEFAULT_SYSTEM_PROMPT_FORMAT
from bfcl_eval.utils import is_function_calling_format_output, _func_doc_language_specific_pre_processing
job = json.load(sys.stdin)
out = {"verdicts": [], "prompts": []}
for case in job["cases"]:
    try:
        decoded = default_decode_ast_prompting(case["text"], ReturnFormat.PYTHON)
    except Exception:
        out["verdicts"].append(False); continue
    if not is_function_calling_format_output(decoded):
        out["verdicts"].append(False); continue
    result = ast_checker(case["functions"], decoded, case["ground_truth"], Language.PYTHON, case["category"], case["model"])
    out["verdicts"].append(bool(result["valid"]))
for functions in job["prompt_functions"]:
    docs = _func_doc_language_specific_pre_processing(functions, "simple_python")
    out["prompts"].append(formulate_system_prompt(DEFAULT_SYSTEM_PROMPT_FORMAT, docs))
json.dump(out, sys.stdout)
"""


def official_available() -> bool:
    # a file check, not an import: importing bfcl-eval takes 15-40 s here
    return (BFCL_EVAL_PATH / "bfcl_eval" / "eval_checker" / "ast_eval" / "ast_checker.py").is_file()


needs_official = pytest.mark.skipif(
    not official_available(),
    reason=f"bfcl-eval's checker is not installed in {BFCL_EVAL_PATH}; install it with: {BFCL_EVAL_INSTALL}",
)


def run_official(cases: list[dict[str, Any]], prompt_functions: list[Any] = ()) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(BFCL_EVAL_PATH)}
    job = json.dumps({"cases": cases, "prompt_functions": list(prompt_functions)})
    done = subprocess.run([sys.executable, "-c", OFFICIAL], input=job, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def fidelity_cases(items: list[Item]) -> list[tuple[Item, str, str, bool | None]]:
    """(item, kind, text, expected): references must pass, corruptions fail,
    variants only have to agree."""
    cases: list[tuple[Item, str, str, bool | None]] = []
    for item in items:
        cases.append((item, "reference", item.reference, True))
        cases += [(item, kind, text, False) for kind, text in corruptions(item)]
        cases += [(item, kind, text, None) for kind, text in variants(item)]
    return cases


HAND_TEXTS = [
    "[other(x=+1)]", "[other(x=-1)]", "[other(x=1.0)]", "[other(x=True)]", "[other(x=2-1)]", "[other(x=[1][0])]",
    "'[other(x=1)]'", "[other(1)]", "[other(x=1), other(x=1)]", "other(x=1)", "[]", "[other(**{'x': 1})]",
]
HAND_ITEM = hand_item("multiple", [{"other": {"x": [1, -1]}}])


def fc_mode_cases() -> list[tuple[Item, str]]:
    """BFCL multiple items with a dotted function name, answered with a_b for a.b."""
    items = [i for i in load("bfcl_multiple") if "." in next(iter(i.data["ground_truth"][0]))][:40]
    cases = []
    for item in items:
        name, rest = item.reference[1:].split("(", 1)
        cases.append((item, "[" + name.replace(".", "_") + "(" + rest))
    return cases


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    """Every case of the fidelity tests, judged by bfcl-eval in ONE subprocess
    (its import alone takes most of the time)."""
    groups: dict[str, list[dict[str, Any]]] = {}

    def add(group: str, item: Item, text: str, model: str = PROMPTING_MODEL) -> None:
        groups.setdefault(group, []).append({"functions": item.data["functions"], "text": text,
                                             "ground_truth": item.data["ground_truth"],
                                             "category": item.data["category"], "model": model})

    sets = {"sample": sample_items()}
    if (DATA_DIR / "bfcl").is_dir():
        sets.update({name: load(name) for name in PUBLIC})
        for item, text in fc_mode_cases():
            add("fc_mode:" + FC_MODEL, item, text, FC_MODEL)
            add("fc_mode:" + PROMPTING_MODEL, item, text)
    for name, items in sets.items():
        for item, _, text, _ in fidelity_cases(items):
            add(name, item, text)
    for text in HAND_TEXTS:
        add("hand", HAND_ITEM, text)
    order = list(groups)
    flat = [case for g in order for case in groups[g]]
    out = run_official(flat, [i.data["functions"] for i in sets["sample"]])
    verdicts, result, at = out["verdicts"], {"prompts": out["prompts"]}, 0
    for g in order:
        result[g] = verdicts[at:at + len(groups[g])]
        at += len(groups[g])
    return result


def assert_agreement(items: list[Item], official_verdicts: list[bool]) -> None:
    cases = fidelity_cases(items)
    ours = score([c[0] for c in cases], [c[2] for c in cases], bfcl_strict_format=True)
    assert len(official_verdicts) == len(cases)
    disagree = [(c[0].id, c[1], c[2], o, t) for c, o, t in zip(cases, ours, official_verdicts) if o != t]
    assert disagree == [], disagree[:10]
    assert all(t for c, t in zip(cases, official_verdicts) if c[3] is True)
    assert not any(t for c, t in zip(cases, official_verdicts) if c[3] is False)
    # the rewrites exercise acceptance too (reversed parallel calls, ints for floats, case)
    assert sum(t for c, t in zip(cases, official_verdicts) if c[3] is None) > len(items)


@pytest.mark.slow
@needs_data
@needs_official
@pytest.mark.parametrize("name", list(PUBLIC))
def test_fidelity_with_bfcl_checker_on_public_sets(name: str, official: dict[str, Any]) -> None:
    assert_agreement(load(name), official[name])


@pytest.mark.slow
@needs_official
def test_fidelity_with_bfcl_checker_on_sample(official: dict[str, Any]) -> None:
    assert_agreement(sample_items(), official["sample"])


@pytest.mark.slow
@needs_official
def test_fidelity_on_decoder_quirks(official: dict[str, Any]) -> None:
    ours = score([HAND_ITEM] * len(HAND_TEXTS), HAND_TEXTS, bfcl_strict_format=True)
    assert list(zip(HAND_TEXTS, ours)) == list(zip(HAND_TEXTS, official["hand"]))
    assert any(official["hand"]) and not all(official["hand"])


@pytest.mark.slow
@needs_data
@needs_official
def test_fidelity_fc_mode_names(official: dict[str, Any]) -> None:
    cases = fc_mode_cases()
    assert len(cases) >= 10
    items, texts = [c[0] for c in cases], [c[1] for c in cases]
    assert score(items, texts, bfcl_underscore_to_dot=True) == official["fc_mode:" + FC_MODEL] == [True] * len(cases)
    assert score(items, texts) == official["fc_mode:" + PROMPTING_MODEL] == [False] * len(cases)


@pytest.mark.slow
@needs_official
def test_prompt_is_bfcls_default_system_prompt(official: dict[str, Any]) -> None:
    assert [fc_prompts.system_text(i) for i in sample_items()] == official["prompts"]
