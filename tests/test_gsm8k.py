"""GSM8K and reasoning_sample: loader, prompts, scorer, and fidelity with lm-eval.

The real GSM8K test file comes from ../shared/datasets (or $CODEEVAL_DATA_DIR);
it is never copied into the repo.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from pytest_codeeval import extraction
from pytest_codeeval.catalog import load_catalog
from pytest_codeeval.datasets import load_dataset
from pytest_codeeval.datasets.context import LoadContext
from pytest_codeeval.datasets.gsm8k import item_from_record, target_number
from pytest_codeeval.errors import DatasetError
from pytest_codeeval.items import Item
from pytest_codeeval.prompts import math as math_prompts
from pytest_codeeval.prompts import template_hash
from pytest_codeeval.scoring import get_scorer
from pytest_codeeval.scoring.base import ScoreContext
from pytest_codeeval.scoring.gsm8k import FLEXIBLE, STRICT, Gsm8kScorer, extract, normalise

from helpers import shared_datasets

REPO = Path(__file__).resolve().parents[1]
WRONG = REPO / "tests" / "data" / "wrong_answers" / "reasoning_sample.jsonl"



@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def gsm8k_items(catalog) -> list[Item]:
    data = shared_datasets()
    if not (data / "gsm8k" / "test.jsonl").is_file():
        pytest.skip(f"GSM8K test file not found under {data} (set CODEEVAL_DATA_DIR)")
    return load_dataset(catalog.dataset("gsm8k"), LoadContext(data_dir=data, offline=True))


@pytest.fixture(scope="module")
def sample_items(catalog) -> list[Item]:
    return load_dataset(catalog.dataset("reasoning_sample"), LoadContext(offline=True))


def corrupt(reference: str) -> str:
    """The reference with its last number changed (+1): the worked steps stay, the answer is wrong."""
    m = list(re.finditer(r"-?\d[\d,]*(?:\.\d+)?", reference))[-1]
    value = Fraction(m.group().replace(",", "")) + 1
    text = str(value.numerator) if value.denominator == 1 else str(float(value))
    return reference[: m.start()] + text + reference[m.end():]


def score(items: list[Item], answers: list[str]):
    scorer = Gsm8kScorer()
    ctx = ScoreContext(chat=True)
    verdicts = scorer.score(items, [[a] for a in answers], ctx)
    return [row[0] for row in verdicts], scorer.aggregate(items, verdicts, ctx)


# --- the loader -----------------------------------------------------------------


def test_gsm8k_loads_all_1319_test_items(gsm8k_items: list[Item]) -> None:
    assert len(gsm8k_items) == 1319
    first = gsm8k_items[0]
    assert first.id == "gsm8k/0" and gsm8k_items[-1].id == "gsm8k/1318"
    assert first.task_type == "math"
    assert first.prompt.startswith("Janet") and first.reference.endswith("#### 18")
    assert first.data["target"] == "18"
    for item in gsm8k_items:
        assert re.fullmatch(r"-?\d+(\.\d+)?", item.data["target"]), item.id  # commas removed


def test_target_number_removes_commas() -> None:
    assert target_number("so 1,200 in all\n#### 1,200") == "1200"
    assert target_number("no final line") is None


def test_record_without_final_line_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match=r"#### <number>"):
        item_from_record({"id": "x", "question": "q", "answer": "It is 4."})


def test_gsm8k_missing_offline_names_dataset_and_fix(catalog, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as e:
        load_dataset(catalog.dataset("gsm8k"), LoadContext(data_dir=tmp_path, offline=True))
    assert "'gsm8k'" in str(e.value) and "--data-dir" in str(e.value) and "gsm8k/test.jsonl" in str(e.value)


# --- ground truth on the real data ---------------------------------------------


def test_all_gsm8k_references_score_100_percent(gsm8k_items: list[Item]) -> None:
    verdicts, metrics = score(gsm8k_items, [i.reference for i in gsm8k_items])
    assert [v.item_id for v in verdicts if not v.passed] == []
    assert metrics == {STRICT: 1.0, FLEXIBLE: 1.0}


def test_all_corrupted_gsm8k_answers_fail(gsm8k_items: list[Item]) -> None:
    verdicts, metrics = score(gsm8k_items, [corrupt(i.reference) for i in gsm8k_items])
    assert metrics == {STRICT: 0.0, FLEXIBLE: 0.0}
    assert {v.verdict for v in verdicts} == {"failed"}


# --- fidelity with lm-evaluation-harness ----------------------------------------

TRICKY = [
    "The answer is 42.",  # no '####': strict finds nothing, flexible takes 42.
    "#### 1,234",  # commas are ignored
    "#### 18.",  # a trailing period is ignored
    "#### $18",  # '$' right after '####' defeats lm-eval's strict regex
    "She pays $18.00 in total.\n#### 18.00",  # "18.00" != "18" in lm-eval
    "####18",  # no space: strict finds nothing
    "#### -5\nthen 7",  # strict takes the first '####', flexible the last number
    "#### 3\n#### 4",  # strict takes the first of several
    "We get 1.5 hours, i.e. 90 minutes",
    "No numbers here at all.",
    "",
    "The total is 5 - 3 = 2, so -2 is wrong",
    "#### 12 apples",
    "Result: 3,000,000.",
    "<<3*4=12>>12 so #### 12",
    "answer: .5",
    "#### -0.5",
    "It costs $ 7",
]


def lm_eval_gsm8k():
    """lm-eval's gsm8k.yaml, its RegexFilter and its exact_match, as installed."""
    pytest.importorskip("lm_eval", reason="lm-eval not installed: pip install lm-eval")
    yaml = pytest.importorskip("yaml")
    import lm_eval
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    config = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    filters = {}
    for f in config["filter_list"]:
        regex = f["filter"][0]
        assert regex["function"] == "regex" and f["filter"][1]["function"] == "take_first"
        filters[f["name"]] = RegexFilter(regex_pattern=regex["regex_pattern"], group_select=regex.get("group_select", 0))
    metric = {k: v for k, v in config["metric_list"][0].items() if k not in ("metric", "aggregation", "higher_is_better")}
    return filters, metric, exact_match_hf_evaluate


def fidelity_cases(items: list[Item]) -> list[tuple[Item, str]]:
    cases = [(i, i.reference) for i in items] + [(i, corrupt(i.reference)) for i in items]
    target = items[0]  # "18" in GSM8K: the tricky strings are judged against it
    cases += [(target, t) for t in TRICKY]
    cases += [(target, t.replace("42", "18").replace("1,234", "18").replace("12", "18")) for t in TRICKY]
    return cases


def test_extraction_and_verdicts_match_lm_eval(gsm8k_items: list[Item]) -> None:
    filters, metric, exact_match = lm_eval_gsm8k()
    cases = fidelity_cases(gsm8k_items)
    texts = [t for _, t in cases]
    ours = [extract(t) for t in texts]
    theirs_strict = filters["strict-match"].apply([[t] for t in texts], [{}] * len(texts))
    theirs_flexible = filters["flexible-extract"].apply([[t] for t in texts], [{}] * len(texts))
    assert [o[0] for o in ours] == [r[0] for r in theirs_strict]
    assert [o[1] for o in ours] == [r[0] for r in theirs_flexible]

    verdicts = Gsm8kScorer().score([i for i, _ in cases], [[t] for _, t in cases], ScoreContext())
    for (item, text), (v,), s, f in zip(cases, verdicts, theirs_strict, theirs_flexible):
        lm_strict = exact_match(predictions=[s[0]], references=[item.reference], **metric)["exact_match"]
        lm_flex = exact_match(predictions=[f[0]], references=[item.reference], **metric)["exact_match"]
        assert (v.scores[STRICT], v.scores[FLEXIBLE]) == (lm_strict, lm_flex), (item.id, text)


def test_regexes_are_lm_evals_verbatim() -> None:
    """Without lm-eval installed, this pins the copied patterns to gsm8k.yaml's text."""
    assert extraction.GSM8K_STRICT.pattern == r"#### (\-?[0-9\.\,]+)"
    assert extraction.GSM8K_FLEXIBLE.pattern == r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
    assert [normalise(x) for x in ("1,234", "$18", "so #### 7.", "ABC")] == ["1234", "18", "7", "abc"]


def test_tricky_strings_are_judged_like_lm_eval_documents() -> None:
    item = Item(id="t", task_type="math", prompt="q", reference="x\n#### 18", data={"target": "18"})
    cases = {
        "#### 18": (1.0, 1.0),
        "#### 18.": (1.0, 1.0),
        "The answer is 18.": (0.0, 1.0),
        "#### $18": (0.0, 1.0),
        "#### 18.00": (0.0, 0.0),
        "#### 18\nCheck: 2 * 9 = 18, and 3": (1.0, 0.0),
        "#### 1,8": (1.0, 1.0),  # lm-eval deletes every comma
    }
    verdicts, _ = score([item] * len(cases), list(cases))
    assert {t: (v.scores[STRICT], v.scores[FLEXIBLE]) for t, v in zip(cases, verdicts)} == cases


# --- scorer plumbing --------------------------------------------------------------


def test_scorer_is_registered_and_describes_its_primary_metric() -> None:
    scorer = get_scorer("gsm8k")
    assert isinstance(scorer, Gsm8kScorer)
    assert scorer.describe()["primary_metric"] == STRICT


def test_verdict_kinds_and_details() -> None:
    item = Item(id="t", task_type="math", prompt="q", reference="x\n#### 18", data={"target": "18"})
    verdicts, metrics = score([item] * 4, ["#### 18", "#### 17", "so 18", "none"])
    assert [v.verdict for v in verdicts] == ["passed", "failed", "no_answer", "no_answer"]
    assert [v.extracted for v in verdicts] == ["18", "17", "18", None]
    assert "flexible match only" in verdicts[2].detail and "'#### 17'" in verdicts[1].detail
    assert metrics == {STRICT: 0.25, FLEXIBLE: 0.5}


def test_aggregate_over_several_samples() -> None:
    item = Item(id="t", task_type="math", prompt="q", reference="#### 5", data={"target": "5"})
    scorer = Gsm8kScorer()
    verdicts = scorer.score([item], [["#### 5", "#### 6", "is 5", "#### 5"]], ScoreContext())
    assert [v.sample for v in verdicts[0]] == [0, 1, 2, 3]
    assert scorer.aggregate([item], verdicts, ScoreContext()) == {STRICT: 0.5, FLEXIBLE: 0.75}


# --- prompts ----------------------------------------------------------------------


def test_chat_prompt_asks_for_steps_and_final_line() -> None:
    item = Item(id="t", task_type="math", prompt="How many? ", reference="#### 1")
    p = math_prompts.build(item, chat=True, system_prompt="Be brief.")
    assert p.text is None and p.messages[0] == {"role": "system", "content": "Be brief."}
    user = p.messages[-1]["content"]
    assert "step by step" in user and '"#### <number>"' in user and user.endswith("Question: How many?")


def test_base_prompt_is_lm_eval_format_with_stops() -> None:
    item = Item(id="t", task_type="math", prompt="How many?", reference="#### 1")
    p = math_prompts.build(item, chat=False, system_prompt="ignored")
    assert p.messages is None and p.text.endswith("\n\nQuestion: How many?\nAnswer:")
    assert p.stop == ("Question:", "</s>", "<|im_end|>")
    assert p.text.count("Question:") == 6 and p.text.count("#### ") == 5  # five worked examples


def test_template_hash_covers_every_template() -> None:
    h = template_hash("math")
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert set(math_prompts.TEMPLATES) == {"instruct", "base", "base_fewshot", "base_stops"}


# --- the suite's reasoning_sample -------------------------------------------------

_CALC = re.compile(r"<<([^=>]+)=([^>]+)>>")


def check_arithmetic(answer: str) -> list[str]:
    """Every <<expr=value>> note evaluates to its value (exact fractions)."""
    bad = []
    for expr, value in _CALC.findall(answer):
        exact = eval(re.sub(r"(\d+(?:\.\d+)?)", r"Fraction('\1')", expr), {"Fraction": Fraction})  # noqa: S307 - our own data
        if exact != Fraction(value):
            bad.append(f"{expr}={value}")
    return bad


def test_fewshot_examples_arithmetic_is_right() -> None:
    for question, answer in math_prompts.FEWSHOT:
        assert _CALC.search(answer) and check_arithmetic(answer) == [], question
        assert normalise(answer) == normalise(extract(answer)[0])


def test_reasoning_sample_items(sample_items: list[Item]) -> None:
    assert len(sample_items) >= 60
    assert len({i.prompt for i in sample_items}) == len(sample_items)
    for item in sample_items:
        assert item.task_type == "math" and item.id.startswith("reasoning/")
        assert _CALC.search(item.reference), item.id  # a worked, multi-step solution
        assert len(_CALC.findall(item.reference)) >= 2, item.id
        assert check_arithmetic(item.reference) == [], item.id


def test_reasoning_sample_references_all_pass(sample_items: list[Item]) -> None:
    verdicts, metrics = score(sample_items, [i.reference for i in sample_items])
    assert [v.item_id for v in verdicts if not v.passed] == []
    assert metrics == {STRICT: 1.0, FLEXIBLE: 1.0}


def test_reasoning_sample_near_misses_all_fail(sample_items: list[Item]) -> None:
    rows = [json.loads(line) for line in WRONG.read_text().splitlines() if line.strip()]
    by_id = {i.id: i for i in sample_items}
    assert sorted(r["task_id"] for r in rows) == sorted(by_id)  # one near-miss per item
    items = [by_id[r["task_id"]] for r in rows]
    verdicts, metrics = score(items, [r["completion"] for r in rows])
    assert [v.item_id for v in verdicts if v.passed] == []
    assert metrics[STRICT] == 0.0
    # Some near-misses only lack the '####' line: the flexible metric accepts those.
    assert 0.0 < metrics[FLEXIBLE] < 0.5
