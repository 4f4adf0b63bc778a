"""MBPP (full, sanitized) and EvalPlus loaders: counts, item shape, ground truth.

The MBPP files come from ../shared/datasets (or $CODEEVAL_DATA_DIR); they are
never copied into the repo.  The EvalPlus sets live only on the hub, which
these machines cannot reach: their offline error and their row conversion
are tested here, the hub download itself is not.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pytest_codeeval.catalog import load_catalog
from pytest_codeeval.datasets import load_dataset
from pytest_codeeval.datasets.context import LoadContext
from pytest_codeeval.datasets.evalplus import mbpp_plus_item, script_as_check
from pytest_codeeval.datasets.mbpp import check_function, entry_point, mbpp_prompt
from pytest_codeeval.engines.reference import reference_answer
from pytest_codeeval.errors import DatasetError
from pytest_codeeval.items import Item
from pytest_codeeval.prompts import code as code_prompts
from pytest_codeeval.scoring.base import ScoreContext
from pytest_codeeval.scoring.code import CodeExecScorer, ground_truth

from helpers import shared_datasets

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _load(catalog, name: str) -> list[Item]:
    data = shared_datasets()
    if not (data / "mbpp").is_dir():
        pytest.skip(f"MBPP files not found under {data} (set CODEEVAL_DATA_DIR)")
    return load_dataset(catalog.dataset(name), LoadContext(data_dir=data, offline=True))


@pytest.fixture(scope="module")
def mbpp(catalog) -> list[Item]:
    return _load(catalog, "mbpp")


@pytest.fixture(scope="module")
def sanitized(catalog) -> list[Item]:
    return _load(catalog, "mbpp_sanitized")


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sandbox timing calibration goes to a private folder, not the user's cache."""
    monkeypatch.setenv("CODEEVAL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- counts and shape -----------------------------------------------------------


def test_mbpp_full_test_split_is_task_ids_11_to_510(mbpp: list[Item]) -> None:
    assert len(mbpp) == 500
    assert [i.id for i in mbpp] == [f"Mbpp/{n}" for n in range(11, 511)]


def test_mbpp_sanitized_test_split_has_257_items(sanitized: list[Item]) -> None:
    assert len(sanitized) == 257
    ids = [int(i.id.split("/")[1]) for i in sanitized]
    assert ids == sorted(ids) and 11 <= ids[0] and ids[-1] <= 510


def test_item_shape_follows_evalplus_and_bigcode(mbpp: list[Item]) -> None:
    raw = {}
    with (shared_datasets() / "mbpp" / "mbpp.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            raw[f"Mbpp/{row['task_id']}"] = row
    for item in mbpp:
        row = raw[item.id]
        assert item.task_type == "code" and item.data["format"] == "mbpp"
        assert item.prompt == f'"""\n{row["text"].strip()}\n{row["test_list"][0].strip()}\n"""\n'
        assert item.reference.rstrip("\n") == row["code"].rstrip("\n")
        assert item.data["test"].startswith("def check(candidate):\n")
        for t in row["test_list"]:
            assert f"    {t.strip()}\n" in item.data["test"]
        assert item.data["entry_point"] in row["test_list"][0] and f"def {item.data['entry_point']}" in item.reference
        with warnings.catch_warnings():  # a few solutions use "\w" in plain strings
            warnings.simplefilter("ignore", DeprecationWarning)
            compile(item.prompt + item.reference, item.id, "exec")  # prompt + reference is one program
        compile(item.data["test"], item.id, "exec")


def test_task_367_setup_runs_inside_check(mbpp: list[Item]) -> None:
    """Its setup builds trees from the program's Node class, so it cannot run before the program."""
    item = next(i for i in mbpp if i.id == "Mbpp/367")
    assert item.data["test_setup"] == ""
    assert "    root = Node(1)" in item.data["test"] and "\r" not in item.data["test"]


def test_sanitized_test_imports_become_test_setup(sanitized: list[Item]) -> None:
    with_imports = [i for i in sanitized if i.data["test_setup"]]
    assert with_imports and all(i.data["test_setup"].startswith("import ") for i in with_imports)
    assert any("math.isclose" in i.data["test"] for i in with_imports)


def test_entry_point_prefers_a_function_the_code_defines() -> None:
    code = "def similar(a, b):\n    return set(a) & set(b)\n"
    assert entry_point(["assert set(similar((1,), (1,))) == {1}"], code) == "similar"
    assert entry_point(["assert math.isclose(area(2), 4)"], "import math\ndef area(r):\n    return r*r\n") == "area"
    with pytest.raises(DatasetError, match="which function"):
        entry_point(["x = 1"], "")


def test_check_function_shape() -> None:
    assert check_function(["assert f(1) == 2"], "a = 1\r\nb = 2") == (
        "def check(candidate):\n    a = 1\n    b = 2\n    assert f(1) == 2\n"
    )
    assert mbpp_prompt("  Do it. ", "assert f() == 1") == '"""\nDo it.\nassert f() == 1\n"""\n'


def test_code_prompts_for_mbpp_items(mbpp: list[Item]) -> None:
    item = mbpp[0]
    base = code_prompts.build(item, chat=False, system_prompt="")
    assert base.text == item.prompt and base.stop
    chat = code_prompts.build(item, chat=True, system_prompt="")
    assert item.prompt.strip() in chat.messages[-1]["content"] and "```python" in chat.messages[-1]["content"]


# --- missing offline --------------------------------------------------------------


@pytest.mark.parametrize("name", ["mbpp", "mbpp_sanitized", "humaneval_plus", "mbpp_plus"])
def test_missing_offline_names_the_dataset_and_the_fix(catalog, name: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as e:
        load_dataset(catalog.dataset(name), LoadContext(data_dir=tmp_path, offline=True))
    message = str(e.value)
    assert f"dataset {name!r} is not available offline" in message
    assert "local_path" in message and catalog.dataset(name).hf_id in message  # where to put a local copy


def test_malformed_sanitized_file_is_a_dataset_error(catalog, tmp_path: Path) -> None:
    (tmp_path / "mbpp").mkdir()
    (tmp_path / "mbpp" / "sanitized-mbpp.json").write_text('{"not": "an array"}')
    with pytest.raises(DatasetError, match="JSON array"):
        load_dataset(catalog.dataset("mbpp_sanitized"), LoadContext(data_dir=tmp_path, offline=True))


# --- ground truth, plain execution --------------------------------------------------

# Runs in a child process: MBPP's reference code is trusted, but it should
# not share (or change) the test runner's interpreter.  It mirrors the judge:
# the tests run in their own namespace where the entry point's name is bound
# to the candidate; a test that needs the program's own names (task 367's
# Node) runs next to the program here (the sandbox hands the judge those
# names as handles instead: trusted code here, untrusted there).
RUNNER = r'''
import json, sys
results = {}
for it in json.load(sys.stdin):
    try:
        prog = {"__name__": "__candidate__"}
        exec(it["setup"], prog)
        exec(it["program"], prog)
        fn = prog[it["entry"]]
        tests = {"__name__": "__judge__"}
        exec(it["setup"], tests)
        exec(it["test"], tests)
        check = tests["check"]  # before binding: a solution may itself be named check
        tests[it["entry"]] = fn
        try:
            check(fn)
        except NameError:
            exec(it["test"], prog)
            check = prog["check"]
            prog[it["entry"]] = fn
            check(fn)
        results[it["id"]] = "passed"
    except BaseException as e:
        results[it["id"]] = f"{type(e).__name__}: {e}"[:300]
json.dump(results, sys.stdout)
'''


def run_plain(items: list[Item], programs: list[str]) -> dict[str, str]:
    payload = [{"id": i.id, "program": p, "entry": i.data["entry_point"], "test": i.data["test"],
                "setup": i.data["test_setup"]} for i, p in zip(items, programs)]
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_first_50_references_pass_and_broken_ones_fail_plain(mbpp: list[Item]) -> None:
    items = mbpp[:50]  # Mbpp/56 among them: its solution is named check
    ok = run_plain(items, [i.prompt + i.reference for i in items])
    assert {k: v for k, v in ok.items() if v != "passed"} == {}
    # The same programs with the entry point rebound to a stub returning None.
    broken = run_plain(items, [i.prompt + i.reference + f"\n{i.data['entry_point']} = lambda *a, **k: None\n" for i in items])
    assert [k for k, v in broken.items() if v == "passed"] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mbpp", "mbpp_sanitized"])
def test_all_references_pass_plain_execution(catalog, name: str) -> None:
    items = _load(catalog, name)
    results = run_plain(items, [i.prompt + i.reference for i in items])
    assert len(results) == len(items)
    assert {k: v for k, v in results.items() if v != "passed"} == {}


# --- ground truth, through the sandbox ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mbpp", "mbpp_sanitized"])
def test_all_references_pass_in_the_sandbox(catalog, name: str, private_cache: Path) -> None:
    items = _load(catalog, name)
    failures = {v.item_id: f"{v.verdict}: {v.detail}" for v in ground_truth(items) if not v.passed}
    assert failures == {}


@pytest.mark.slow
def test_chat_replies_of_the_reference_engine_pass_in_the_sandbox(mbpp: list[Item], private_cache: Path) -> None:
    rows = CodeExecScorer().score(mbpp, [[reference_answer(i, chat=True)] for i in mbpp], ScoreContext(chat=True))
    failures = {r[0].item_id: r[0].detail for r in rows if not r[0].passed}
    assert failures == {}


def test_wrong_mbpp_answers_fail_in_the_sandbox(mbpp: list[Item], private_cache: Path) -> None:
    items = mbpp[:12]
    entry = [i.data["entry_point"] for i in items]
    wrong = [i.reference + f"\n_orig_{e} = {e}\ndef {e}(*a, **k):\n    r = _orig_{e}(*a, **k)\n    return r + r if r else 1\n"
             for i, e in zip(items, entry)]
    rows = CodeExecScorer().score(items, [[i.reference, w] for i, w in zip(items, wrong)], ScoreContext(chat=False))
    assert [r[0].passed for r in rows] == [True] * len(items)
    assert [r[1].item_id for r in rows if r[1].passed] == []


# --- EvalPlus conversion (no hub here: rows built the way evalplus/mbppplus holds them) ---

PLUS_TEST = '''import numpy as np

def is_floats(x) -> bool:
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x))

def assertion(out, exp, atol):
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if atol != 0:
        assert np.allclose(out, exp, rtol=1e-07, atol=atol)
    else:
        assert out == exp, f"out: {out}, exp: {exp}"

inputs = [[(3, 4, 5, 6), (5, 7, 4, 10)], [(1, 2, 3, 4), (5, 4, 3, 7)], [(), (1,)], [(9, 9), (9,)]]
results = [(4, 5), (3, 4), (), (9,)]
for i, (inp, exp) in enumerate(zip(inputs, results)):
    assertion(set(shared_items(*inp)), set(exp), 0)
'''


def plus_row() -> dict:
    return {
        "task_id": 2,
        "prompt": "Write a function to find the shared elements from the given two lists.",
        "code": "def shared_items(a, b):\n    return tuple(set(a) & set(b))",
        "test_list": ["assert set(shared_items((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"],
        "test_imports": [],
        "test": PLUS_TEST,
        "source_file": "x",
    }


def test_mbpp_plus_row_conversion_runs_in_the_sandbox(private_cache: Path) -> None:
    item = mbpp_plus_item(plus_row())
    assert item.id == "Mbpp/2" and item.data["entry_point"] == "shared_items"
    assert item.prompt.startswith('"""\nWrite a function') and item.data["format"] == "mbpp_plus"
    wrong = "def shared_items(a, b):\n    return tuple(set(a) | set(b))\n"
    almost = "def shared_items(a, b):\n    return tuple(x for x in a if x in b and x != 9)\n"  # fails only a plus input
    rows = CodeExecScorer().score([item], [[item.reference, wrong, almost]], ScoreContext(chat=False))
    assert [v.passed for v in rows[0]] == [True, False, False]


def test_evalplus_local_jsonl_override(catalog, tmp_path: Path, private_cache: Path) -> None:
    path = tmp_path / "mbppplus.jsonl"
    path.write_text(json.dumps(plus_row()) + "\n")
    spec = dataclasses.replace(catalog.dataset("mbpp_plus"), local_path=str(path))
    items = load_dataset(spec, LoadContext(offline=True))
    assert [i.id for i in items] == ["Mbpp/2"]
    assert ground_truth(items)[0].passed


def test_humanevalplus_rows_are_humaneval_items(catalog, tmp_path: Path) -> None:
    row = {"task_id": "HumanEval/0", "prompt": "def f(x):\n", "canonical_solution": "    return x\n",
           "entry_point": "f", "test": "def check(candidate):\n    assert candidate(1) == 1\n"}
    path = tmp_path / "heplus.jsonl"
    path.write_text(json.dumps(row) + "\n")
    spec = dataclasses.replace(catalog.dataset("humaneval_plus"), local_path=str(path))
    (item,) = load_dataset(spec, LoadContext(offline=True))
    assert (item.id, item.data["format"], item.data["entry_point"]) == ("HumanEval/0", "humaneval", "f")


def test_script_with_multiline_string_falls_back_to_exec() -> None:
    script = 'x = """a\nb"""\nassert f(1) == 1 and x == "a\\nb"\n'
    check = script_as_check(script)
    assert "exec(_EVALPLUS_TEST, globals())" in check
    ns: dict = {}
    exec(check, ns)
    ns["f"] = lambda v: v
    ns["check"](ns["f"])
