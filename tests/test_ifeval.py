"""IFEval and instruction_following_sample: loader, prompts, checkers, scorer,
and fidelity with the reference implementation.

The reference is google-research ``instruction_following_eval``; lm-eval ships
the same code as ``lm_eval.tasks.ifeval`` (``utils.process_results`` is its
strict + loose evaluation).  When lm-eval is installed (the ``dev`` extra) we
compare every instruction verdict with it on the real 541 prompts.  The real
IFEval file comes from ../shared/datasets (or $CODEEVAL_DATA_DIR) and is never
copied into the repo.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pytest_codeeval.catalog import load_catalog
from pytest_codeeval.datasets import load_dataset
from pytest_codeeval.datasets.context import LoadContext
from pytest_codeeval.datasets.ifeval import RECORD_FIELDS, item_from_record
from pytest_codeeval.errors import DatasetError
from pytest_codeeval.items import Item
from pytest_codeeval.prompts import instruction_following as if_prompts
from pytest_codeeval.prompts import template_hash
from pytest_codeeval.scoring import get_scorer
from pytest_codeeval.scoring.base import ScoreContext
from pytest_codeeval.scoring.ifeval import INSTRUCTIONS, METRICS, IfevalScorer, InstructionError, check, evaluate
from pytest_codeeval.scoring.ifeval import text as iftext
from pytest_codeeval.scoring.ifeval.evaluate import loose_variants

from helpers import shared_datasets

REPO = Path(__file__).resolve().parents[1]
WRONG = REPO / "tests" / "data" / "wrong_answers" / "instruction_following_sample.jsonl"
SAMPLE = REPO / "fixtures" / "datasets" / "instruction_following_sample.jsonl"
HAS_LM_EVAL = importlib.util.find_spec("lm_eval") is not None
# IFEval records whose "letter" is not a letter: the reference checks a random
# letter there (see checkers.keywords_letter_frequency), so no comparison is possible.
RANDOM_IN_REFERENCE = {("1122", "keywords:letter_frequency"), ("1129", "keywords:letter_frequency")}



IFEVAL_FILE = shared_datasets() / "ifeval" / "input_data.jsonl"
needs_ifeval = pytest.mark.skipif(not IFEVAL_FILE.is_file(), reason=f"{IFEVAL_FILE} is not present")
needs_lm_eval = pytest.mark.skipif(not HAS_LM_EVAL, reason="lm-eval is not installed (pip install -e .[dev])")


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def ifeval_items(catalog) -> list[Item]:
    if not IFEVAL_FILE.is_file():
        pytest.skip(f"{IFEVAL_FILE} is not present")
    return load_dataset(catalog.dataset("ifeval"), LoadContext(data_dir=shared_datasets(), offline=True))


@pytest.fixture(scope="module")
def ifeval_rows() -> dict[str, dict]:
    rows = [json.loads(line) for line in IFEVAL_FILE.read_text("utf-8").splitlines() if line.strip()]
    return {str(r["key"]): r for r in rows}


@pytest.fixture(scope="module")
def sample_items(catalog) -> list[Item]:
    return load_dataset(catalog.dataset("instruction_following_sample"), LoadContext(offline=True))


def _wrong_answers() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in WRONG.read_text("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.setdefault(row["task_id"], []).append(row["completion"])
    return out


# ---- loader -----------------------------------------------------------------


@needs_ifeval
def test_loads_the_541_public_prompts(ifeval_items: list[Item]) -> None:
    assert len(ifeval_items) == 541
    first = ifeval_items[0]
    assert first.id == "1000" and first.task_type == "instruction_following"
    assert first.prompt.startswith("Write a 300+ word summary of the wikipedia page")
    assert first.data["instruction_id_list"] == [
        "punctuation:no_comma",
        "detectable_format:number_highlighted_sections",
        "length_constraints:number_words",
    ]
    assert first.data["kwargs"] == [{}, {"num_highlights": 3}, {"relation": "at least", "num_words": 300}]
    # IFEval publishes no reference responses: said so, not faked.
    assert all(i.reference == "" and i.data["has_reference"] is False for i in ifeval_items)
    assert sum(len(i.data["instruction_id_list"]) for i in ifeval_items) == 834


@needs_ifeval
def test_every_instruction_type_of_the_public_set_is_implemented(ifeval_items: list[Item]) -> None:
    used = {iid for item in ifeval_items for iid in item.data["instruction_id_list"]}
    assert len(used) == 25
    assert used == set(INSTRUCTIONS)
    # and every record's kwargs are accepted as given (the loader validated them; check again directly)
    for item in ifeval_items:
        for iid, kw in zip(item.data["instruction_id_list"], item.data["kwargs"]):
            check(iid, kw, "some text")


def test_missing_offline_names_the_dataset_and_the_fix(catalog, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="ifeval") as err:
        load_dataset(catalog.dataset("ifeval"), LoadContext(data_dir=tmp_path, offline=True))
    assert "--data-dir" in str(err.value) and "google/IFEval" in str(err.value)


def test_hub_rows_with_none_filled_kwargs_are_accepted() -> None:
    # The HuggingFace copy gives every record every argument name, None where unused.
    none_filled = {name: None for t in INSTRUCTIONS.values() for name in t.args}
    row = {
        "key": 7,
        "prompt": "p",
        "instruction_id_list": ["punctuation:no_comma", "detectable_format:number_bullet_lists"],
        "kwargs": [dict(none_filled), {**none_filled, "num_bullets": 2}],
    }
    item = item_from_record(row)
    assert item.id == "7" and item.data["kwargs"] == [{}, {"num_bullets": 2}]


@pytest.mark.parametrize(
    ("ids", "kwargs", "message"),
    [
        (["keywords:unknown"], [{}], "unknown IFEval instruction id 'keywords:unknown'"),
        (["punctuation:no_comma"], [], "same length"),
        (["detectable_format:number_bullet_lists"], [{}], "missing argument"),
        (["detectable_format:number_bullet_lists"], [{"num_bullets": 2, "bullets": 3}], "unexpected argument"),
        (["keywords:frequency"], [{"keyword": "a", "frequency": 2, "relation": "more than"}], "relation must be"),
        (["length_constraints:number_words"], [{"num_words": "ten", "relation": "at least"}], "non-negative integer"),
    ],
)
def test_malformed_records_are_dataset_errors(ids: list[str], kwargs: list[dict], message: str) -> None:
    row = {"key": 3, "prompt": "p", "instruction_id_list": ids, "kwargs": kwargs}
    with pytest.raises(DatasetError, match=message) as err:
        item_from_record(row)
    assert "record 3" in str(err.value)


def test_record_fields() -> None:
    assert RECORD_FIELDS == ("key", "prompt", "instruction_id_list", "kwargs")


# ---- prompts ----------------------------------------------------------------


def test_prompt_is_the_dataset_text_as_is() -> None:
    item = Item(id="1", task_type="instruction_following", prompt="  Write a poem.\nNo commas. ", reference="")
    chat = if_prompts.build(item, chat=True, system_prompt="")
    assert chat.messages == ({"role": "user", "content": "  Write a poem.\nNo commas. "},)
    with_system = if_prompts.build(item, chat=True, system_prompt="Be brief.")
    assert with_system.messages[0] == {"role": "system", "content": "Be brief."}
    base = if_prompts.build(item, chat=False, system_prompt="ignored")
    assert base.text == item.prompt and base.messages is None and base.stop == ()
    assert len(template_hash("instruction_following")) == 16


# ---- checkers: hand-computed cases, one pass and one fail (at least) per type ----

CASES = [
    # keywords
    ("keywords:existence", {"keywords": ["moon", "tide"]}, "The MOON pulls the tide.", True),
    ("keywords:existence", {"keywords": ["moon", "tide"]}, "The moon is bright.", False),
    # keyword as a substring counts: the reference searches the raw keyword, no word boundary
    ("keywords:frequency", {"keyword": "cat", "frequency": 3, "relation": "at least"}, "cat Cat concatenate", True),
    ("keywords:frequency", {"keyword": "cat", "frequency": 3, "relation": "at least"}, "cat Cat dog", False),
    ("keywords:frequency", {"keyword": " cat ", "frequency": 2, "relation": "less than"}, "one cat here", True),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "less than"}, "cat and cat", False),
    # forbidden words use word boundaries: "hotel" does not contain the word "hot"
    ("keywords:forbidden_words", {"forbidden_words": ["hot"]}, "We stayed at a hotel.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["hot"]}, "It was HOT today.", False),
    ("keywords:letter_frequency", {"letter": "Z", "let_frequency": 3, "let_relation": "at least"}, "zZz", True),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"}, "zz", False),
    ("keywords:letter_frequency", {"letter": "a", "let_frequency": 2, "let_relation": "less than"}, "a b", True),
    ("keywords:letter_frequency", {"letter": "a", "let_frequency": 2, "let_relation": "less than"}, "banana", False),
    # a non-letter "letter" (IFEval 1122 '#', 1129 '!') is counted literally
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"}, "#a #b", True),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"}, "#a b", False),
    # language
    (
        "language:response_language",
        {"language": "fr"},
        "Nous sommes allés au marché ce matin pour acheter des légumes frais et du pain.",
        True,
    ),
    (
        "language:response_language",
        {"language": "fr"},
        "We went to the market this morning to buy fresh vegetables and bread.",
        False,
    ),
    # undetectable text (no letters) counts as followed, as in the reference
    ("language:response_language", {"language": "fr"}, "12345 !!!", True),
    # length constraints: Punkt knows "Mr." is not a sentence end
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"}, "Mr. Smith came. He sat.", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"}, "Mr. Smith came. He sat.", False),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"}, "Mr. Smith came home.", True),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"}, "He came. He sat.", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "one\n***\ntwo", True),
    # a leading or trailing divider does not count; an empty middle paragraph fails
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\none\n***\ntwo\n***", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "one\n***\n***\ntwo", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "one\n\ntwo", False),
    # words are \w+ runs: "don't" is two words, "e-mail" two
    ("length_constraints:number_words", {"num_words": 4, "relation": "at least"}, "don't e-mail", True),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "don't e-mail", False),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "two words", True),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "three whole words", False),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Then"},
        'First part.\n\n"Then," she said.',
        True,
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        "First part.\n\nAfter that.",
        False,
    ),
    (  # right first word, wrong paragraph count
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "then"},
        "First part.\n\nthen more.",
        False,
    ),
    # detectable content
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [place]", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at place", False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Bye.\np.s. see you", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Bye.\nPS see you", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\nP. P. S call me", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\nP.S. call me", False),
    # detectable format
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, "* a\n* b\n- c", True),
    # "**bold**" at a line start is not a bullet
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, "* a\n**b**\n- c", False),
    ("detectable_format:constrained_response", {}, "Thinking... My answer is maybe.", True),
    ("detectable_format:constrained_response", {}, "My answer is probably yes.", False),
    # *x* counts once; **x** counts once (the single-star pattern only sees the empty "**" pairs);
    # blank ones like * * count zero
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*a* and **b**", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "**bold** only", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and * *", False),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2}, "Section 1\na\nSection 2\nb", True),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2}, "Section 1\na\nSection two\nb", False),
    ("detectable_format:json_format", {}, '```JSON\n{"a": [1, 2]}\n```', True),
    ("detectable_format:json_format", {}, 'Here: {"a": 1}', False),
    ("detectable_format:title", {}, "<<A Title>>\ntext", True),
    ("detectable_format:title", {}, "<<  >>\n<<broken\n>>", False),
    # combination
    ("combination:two_responses", {}, "first\n******\nsecond", True),
    ("combination:two_responses", {}, "same\n******\nsame ", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "say HI. Hi!", True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "Sure. Say hi. Hi!", False),
    # start / end
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, 'Done. "any other questions?"', True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False),
    ("startend:quotation", {}, '  "quoted"  ', True),
    ("startend:quotation", {}, '"', False),
    # change case: capital words are whole tokens that are upper case ("U.S." is one token)
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}, "The NASA team met in the U.S. today", True),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}, "The NASA team met today", False),
    ("change_case:capital_word_frequency", {"capital_frequency": 1, "capital_relation": "less than"}, "no capitals here", True),
    ("change_case:capital_word_frequency", {"capital_frequency": 1, "capital_relation": "less than"}, "I think so", False),
    ("change_case:english_capital", {}, "THIS IS A WARNING ABOUT THE BRIDGE AHEAD OF YOU.", True),
    ("change_case:english_capital", {}, "THIS IS A WARNING about THE BRIDGE.", False),
    ("change_case:english_capital", {}, "ΑΥΤΗ ΕΙΝΑΙ ΜΙΑ ΠΡΟΕΙΔΟΠΟΙΗΣΗ ΓΙΑ ΤΗ ΓΕΦΥΡΑ ΜΠΡΟΣΤΑ ΣΑΣ.", False),  # upper case, not English
    ("change_case:english_lowercase", {}, "the weather is lovely today and we are going for a walk.", True),
    ("change_case:english_lowercase", {}, "the weather is lovely today and We are going for a walk.", False),
    # punctuation
    ("punctuation:no_comma", {}, "No commas here.", True),
    ("punctuation:no_comma", {}, "One, comma.", False),
]


@pytest.mark.parametrize(("iid", "kwargs", "response", "expected"), CASES)
def test_checker_hand_cases(iid: str, kwargs: dict, response: str, expected: bool) -> None:
    assert check(iid, kwargs, response) is expected


def test_hand_cases_cover_every_type_both_ways() -> None:
    outcomes = {(iid, expected) for iid, _, _, expected in CASES}
    assert {iid for iid, _ in outcomes} == set(INSTRUCTIONS)
    assert all((iid, True) in outcomes and (iid, False) in outcomes for iid in INSTRUCTIONS)


@pytest.mark.parametrize("iid", sorted(INSTRUCTIONS))
def test_empty_response_follows_nothing(iid: str) -> None:
    kwargs = next(kw for i, kw, _, _ in CASES if i == iid)
    assert check(iid, kwargs, "") is False
    assert check(iid, kwargs, "  \n ") is False


def test_unknown_instruction_and_bad_arguments_raise() -> None:
    with pytest.raises(InstructionError, match="unknown IFEval instruction id"):
        check("detectable_format:rephrase", {}, "x")
    with pytest.raises(InstructionError, match="letter must be one character"):
        check("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"}, "x")
    with pytest.raises(InstructionError, match="nth_paragraph"):
        check(
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"},
            "x",
        )


# ---- the offline NLTK pieces ------------------------------------------------


def test_punkt_english_model_matches_nltk_documentation() -> None:
    # The example of nltk/tokenize/punkt.py's docstring, which NLTK checks
    # against its English model: abbreviations ("Mr.", "S.") and a sentence
    # starting with a lower-case "i".
    text = (
        "Punkt knows that the periods in Mr. Smith and Johann S. Bach\n"
        "do not mark sentence boundaries.  And sometimes sentences\n"
        "can start with non-capitalized words.  i is a good variable\n"
        "name."
    )
    assert iftext.split_sentences(text) == [
        "Punkt knows that the periods in Mr. Smith and Johann S. Bach\ndo not mark sentence boundaries.",
        "And sometimes sentences\ncan start with non-capitalized words.",
        "i is a good variable\nname.",
    ]
    assert iftext.count_sentences("Hello! How are you? I am fine.") == 3


def test_word_tokenize_is_nltk_word_tokenize() -> None:
    assert iftext.word_tokenize("They'll see NASA's U.S. office. OK?") == [
        "They", "'ll", "see", "NASA", "'s", "U.S.", "office", ".", "OK", "?",
    ]  # fmt: skip
    assert iftext.count_words("It's 9:30, e-mail me!") == 7


def test_word_count_uses_stdlib_regex_semantics() -> None:
    # \w with the stdlib re, as nltk's RegexpTokenizer had it when IFEval was
    # published: Devanagari vowel signs are not word characters, so they split
    # words (nltk >= 3.10's ``regex`` engine would count 3 here).
    assert iftext.count_words("पुराना प्रकाशस्तंभ बंदरगाह") == 11


def test_language_detection_is_seeded_and_repeatable() -> None:
    short = "ok gut"  # ambiguous: unseeded langdetect changes its mind between calls
    assert len({iftext.detect_language(short) for _ in range(20)}) == 1
    assert iftext.detect_language("Der alte Leuchtturm stand am Rand des Hafens.") == "de"


# ---- strict vs loose --------------------------------------------------------


def test_loose_variants_are_the_reference_eight() -> None:
    assert loose_variants("Sure:\n*a*\nbye") == [
        "Sure:\n*a*\nbye",  # as is
        "Sure:\na\nbye",  # without "*"
        "*a*\nbye",  # without the first line
        "Sure:\n*a*",  # without the last line
        "*a*",  # without both
        "a\nbye",
        "Sure:\na",
        "a",
    ]


@pytest.mark.parametrize(
    ("ids", "kwargs", "response", "strict", "loose"),
    [
        # a chatty first line hides the repeated prompt from the strict test only
        (["combination:repeat_prompt"], [{"prompt_to_repeat": "Name a fruit."}], "Sure!\nName a fruit. Apple.", [False], [True]),
        # a sign-off after the end phrase
        (["startend:end_checker"], [{"end_phrase": "Bye now."}], "Text here. Bye now.\nCheers", [False], [True]),
        # markdown emphasis around a quotation
        (["startend:quotation"], [{}], '**"Be kind."**', [False], [True]),
        # a comma only in the first line
        (["punctuation:no_comma"], [{}], "Hello, world\nsecond line", [False], [True]),
        # no variant helps a comma in the middle line
        (["punctuation:no_comma"], [{}], "a\nb, c\nd", [False], [False]),
        # an instruction that strict already follows stays followed
        (
            ["detectable_format:title", "punctuation:no_comma"],
            [{}, {}],
            "<<T>>\nfine, ok\nend",
            [True, False],
            [True, False],
        ),
    ],
)
def test_strict_and_loose(ids, kwargs, response, strict, loose) -> None:
    result = evaluate(ids, kwargs, response)
    assert list(result.strict) == strict
    assert list(result.loose) == loose


# ---- scorer -----------------------------------------------------------------


def _item(key: str, ids: list[str], kwargs: list[dict]) -> Item:
    return item_from_record({"key": key, "prompt": "p", "instruction_id_list": ids, "kwargs": kwargs})


def test_aggregate_on_a_hand_computed_mini_set() -> None:
    items = [
        _item("a", ["punctuation:no_comma", "detectable_format:title"], [{}, {}]),
        _item("b", ["startend:quotation"], [{}]),
        _item("c", ["keywords:existence", "punctuation:no_comma", "detectable_format:json_format"], [{"keywords": ["x"]}, {}, {}]),
    ]
    answers = [
        ["<<T>>\nno commas"],  # a: 2/2 strict, 2/2 loose
        ['*"quoted"*'],  # b: 0/1 strict, 1/1 loose (stars removed)
        ['{"x": 1, "y": 2}'],  # c: keyword yes, comma no, json yes: 2/3 strict and loose
    ]
    scorer = IfevalScorer()
    ctx = ScoreContext()
    verdicts = scorer.score(items, answers, ctx)
    assert [v[0].passed for v in verdicts] == [True, False, False]
    metrics = scorer.aggregate(items, verdicts, ctx)
    assert set(metrics) == set(METRICS)
    assert metrics["prompt_level_strict_acc"] == pytest.approx(1 / 3)
    assert metrics["prompt_level_loose_acc"] == pytest.approx(2 / 3)
    assert metrics["inst_level_strict_acc"] == pytest.approx(4 / 6)  # (2 + 0 + 2) / 6, not a mean of ratios
    assert metrics["inst_level_loose_acc"] == pytest.approx(5 / 6)
    assert verdicts[2][0].detail == "not followed (strict): punctuation:no_comma"
    assert verdicts[1][0].detail == "not followed (strict): startend:quotation; loose: all followed"


def test_samples_each_count_and_empty_is_no_answer() -> None:
    items = [_item("a", ["punctuation:no_comma"], [{}])]
    scorer = get_scorer("ifeval")
    assert isinstance(scorer, IfevalScorer) and scorer.primary_metric == "prompt_level_strict_acc"
    verdicts = scorer.score(items, [["fine", "a, b", "  "]], ScoreContext())
    assert [v.verdict for v in verdicts[0]] == ["passed", "failed", "no_answer"]
    assert [v.sample for v in verdicts[0]] == [0, 1, 2]
    metrics = scorer.aggregate(items, verdicts, ScoreContext())
    assert metrics["prompt_level_strict_acc"] == pytest.approx(1 / 3)
    assert scorer.aggregate(items, [[]], ScoreContext()) == {m: 0.0 for m in METRICS}


# ---- the shipped sample -----------------------------------------------------


def test_sample_size_and_coverage(sample_items: list[Item]) -> None:
    assert len(sample_items) >= 60
    types = {iid for item in sample_items for iid in item.data["instruction_id_list"]}
    assert len(types) >= 15
    assert all(item.reference and item.data["has_reference"] for item in sample_items)
    assert len({item.prompt for item in sample_items}) == len(sample_items)


def test_sample_references_all_pass(sample_items: list[Item]) -> None:
    scorer = IfevalScorer()
    verdicts = scorer.score(sample_items, [[i.reference] for i in sample_items], ScoreContext())
    failed = [(v[0].item_id, v[0].detail) for v in verdicts if not v[0].passed]
    assert failed == []
    metrics = scorer.aggregate(sample_items, verdicts, ScoreContext())
    assert metrics == {m: 1.0 for m in METRICS}


def test_sample_near_misses_all_fail(sample_items: list[Item]) -> None:
    wrong = _wrong_answers()
    assert set(wrong) == {i.id for i in sample_items}  # one near-miss (at least) per item
    scorer = IfevalScorer()
    for item in sample_items:
        verdicts = scorer.score([item], [wrong[item.id]], ScoreContext())[0]
        assert not any(v.passed for v in verdicts), (item.id, [v.detail for v in verdicts])
        assert all(v.verdict == "failed" and v.detail.startswith("not followed (strict):") for v in verdicts)


# ---- fidelity with the reference (lm-eval's copy of google-research's code) ----



_ENGLISH = (
    "The old lighthouse stood at the edge of the harbor, and every evening the keeper climbed "
    "its narrow stairs to light the lamp. Ships passing in the fog relied on its beam. "
    "Mr. Alvarez, who had kept it for thirty years, knew every rock along the coast. "
    "He wrote notes about the tides, the birds and the weather in a thick leather journal."
)
_OTHER_LANGUAGES = {
    "fr": "Le vieux phare se dressait au bord du port et chaque soir le gardien montait ses escaliers étroits pour allumer la lampe.",
    "es": "El viejo faro se alzaba al borde del puerto y cada noche el guardián subía sus estrechas escaleras para encender la lámpara.",
    "de": "Der alte Leuchtturm stand am Rand des Hafens und jeden Abend stieg der Wärter die schmalen Treppen hinauf, um die Lampe anzuzünden.",
    "hi": "पुराना प्रकाशस्तंभ बंदरगाह के किनारे खड़ा था और हर शाम रखवाला दीपक जलाने के लिए उसकी संकरी सीढ़ियाँ चढ़ता था।",
}


def _targeted(item: Item) -> str:
    """A response built from the item's own arguments, meant to follow most of
    its instructions, so the comparison sees passes as well as failures."""
    head: list[str] = []
    body: list[str] = []
    tail: list[str] = []
    for iid, kw in zip(item.data["instruction_id_list"], item.data["kwargs"]):
        if iid == "combination:repeat_prompt":
            head.append(kw["prompt_to_repeat"])
        elif iid == "keywords:existence":
            body.append(" ".join(kw["keywords"]))
        elif iid == "keywords:frequency":
            body.append(" ".join([kw["keyword"]] * (kw["frequency"] + (0 if kw["relation"] == "at least" else -1))))
        elif iid == "detectable_format:title":
            head.append("<<A Title Here>>")
        elif iid == "detectable_format:number_highlighted_sections":
            body.extend(f"*highlight {i}*" for i in range(kw["num_highlights"]))
        elif iid == "detectable_format:multiple_sections":
            body.extend(f"{kw['section_spliter']} {i + 1}\nsection text {i}" for i in range(kw["num_sections"]))
        elif iid == "detectable_format:number_bullet_lists":
            body.extend(f"* bullet {i}" for i in range(kw["num_bullets"]))
        elif iid == "detectable_content:number_placeholders":
            body.extend(f"[slot {i}]" for i in range(kw["num_placeholders"]))
        elif iid == "detectable_content:postscript":
            tail.append(f"{kw['postscript_marker']} see you soon")
        elif iid == "startend:end_checker":
            tail.append(kw["end_phrase"])
        elif iid == "detectable_format:constrained_response":
            body.append("My answer is no.")
        elif iid == "length_constraints:number_words" and kw["relation"] == "at least":
            body.append(" ".join(["word"] * kw["num_words"]))
        elif iid == "length_constraints:number_sentences" and kw["relation"] == "at least":
            body.append(" ".join(["This is one sentence."] * kw["num_sentences"]))
        elif iid == "keywords:letter_frequency":
            body.append(kw["letter"] * kw["let_frequency"])
    return "\n".join(head + body + tail)


def probe_responses(item: Item) -> list[str]:
    """Responses to compare on: generic ones and ones made for this item, with
    the transformations that the loose test undoes (a preamble line, a closing
    line, markdown stars) and those that break instructions (commas, case)."""
    t = _targeted(item)
    paragraphs = "\n\n".join([_ENGLISH] * 3)
    probes = [
        "",
        _ENGLISH,
        _ENGLISH.lower(),
        _ENGLISH.upper(),
        _ENGLISH.replace(",", ""),
        " ***\n".join([_ENGLISH] * 4),
        paragraphs,
        '"' + _ENGLISH + '"',
        "```json\n{\"answer\": \"yes\", \"items\": [1, 2]}\n```",
        "First answer here.\n******\nSecond answer here.",
        "My answer is maybe.",
        t,
        t.replace(",", "").lower(),
        t.upper(),
        "Sure! Here is my response:\n" + t + "\nI hope this helps.",
        "**" + t.replace("\n", "**\n**") + "**",
        '"' + t + '"',
        "\n\n".join(t.split("\n")),
    ]
    probes.extend(_OTHER_LANGUAGES.values())
    probes.extend(_paragraphs(item))
    return probes


def _paragraphs(item: Item) -> list[str]:
    """Paragraph-shaped responses for the two paragraph instructions."""
    out: list[str] = []
    for iid, kw in zip(item.data["instruction_id_list"], item.data["kwargs"]):
        if iid == "length_constraints:number_paragraphs":
            out.append("\n***\n".join(f"Paragraph {i} text." for i in range(kw["num_paragraphs"])))
        elif iid == "length_constraints:nth_paragraph_first_word":
            paras = [f"Paragraph {i} text." for i in range(kw["num_paragraphs"])]
            paras[kw["nth_paragraph"] - 1] = f"{kw['first_word'].capitalize()}, then more text."
            out.append("\n\n".join(paras))
            out.append("Intro line.\n" + "\n\n".join(paras) + "\nBye")
    return out


def reference_registry(nltk_dir: Path):
    """lm-eval's IFEval code, importable offline: NLTK's ``punkt_tab/english``
    written from the same bundled model we use, so both sides tokenize alike
    and the comparison tests the checkers, not the model files."""
    import nltk  # noqa: PLC0415
    from punkt.data import english  # noqa: PLC0415

    lang_dir = nltk_dir / "tokenizers" / "punkt_tab" / "english"
    lang_dir.mkdir(parents=True, exist_ok=True)
    (lang_dir / "abbrev_types.txt").write_text("".join(f"{a}\n" for a in sorted(english.ABBREV_TYPES)), "utf-8")
    (lang_dir / "sent_starters.txt").write_text("".join(f"{a}\n" for a in sorted(english.SENT_STARTERS)), "utf-8")
    (lang_dir / "collocations.tab").write_text("".join(f"{a}\t{b}\n" for a, b in sorted(english.COLLOCATIONS)), "utf-8")
    (lang_dir / "ortho_context.tab").write_text(
        "".join(f"{a}\t{b}\n" for a, b in sorted(english.ORTHO_CONTEXT.items())), "utf-8"
    )
    if str(nltk_dir) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_dir))
    import langdetect  # noqa: PLC0415

    langdetect.DetectorFactory.seed = 0  # the same seed our detector uses
    from lm_eval.tasks.ifeval import utils  # noqa: PLC0415

    return utils


def reference_follow(utils, row: dict, response: str) -> tuple[list[bool], list[bool]]:
    out = utils.process_results(row, [response])
    return list(out["inst_level_strict_acc"]), list(out["inst_level_loose_acc"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    if not HAS_LM_EVAL:
        pytest.skip("lm-eval is not installed (pip install -e .[dev])")
    return reference_registry(tmp_path_factory.mktemp("nltk_data"))


def _nltk_word_count_differs(response: str) -> bool:
    """nltk >= 3.10 runs RegexpTokenizer(r"\\w+") on the third-party ``regex``
    engine, where combining vowel signs (Devanagari, Thai...) are word
    characters; the stdlib ``re`` of the nltk the IFEval paper used (and of our
    count_words) splits words there.  Only non-Latin scripts are affected."""
    from nltk.tokenize import RegexpTokenizer  # noqa: PLC0415

    return any(
        iftext.count_words(v) != len(RegexpTokenizer(r"\w+").tokenize(v)) for v in loose_variants(response)
    )


def _compare(reference, rows: dict[str, dict], items: list[Item], responses) -> tuple[int, list]:
    compared, mismatches = 0, []
    for item in items:
        for response in responses(item):
            ours = evaluate(item.data["instruction_id_list"], item.data["kwargs"], response)
            ref_strict, ref_loose = reference_follow(reference, rows[item.id], response)
            for n, iid in enumerate(item.data["instruction_id_list"]):
                if (item.id, iid) in RANDOM_IN_REFERENCE:
                    continue
                if iid == "length_constraints:number_words" and _nltk_word_count_differs(response):
                    assert response == _OTHER_LANGUAGES["hi"]  # the only probe in such a script
                    continue
                compared += 1
                if (ours.strict[n], ours.loose[n]) != (ref_strict[n], ref_loose[n]):
                    mismatches.append((item.id, iid, ours.strict[n], ref_strict[n], ours.loose[n], ref_loose[n], response[:80]))
    return compared, mismatches


@needs_ifeval
@needs_lm_eval
def test_fidelity_with_reference_on_a_slice_of_ifeval(reference, ifeval_items, ifeval_rows) -> None:
    # every 20th prompt plus the first prompt of each instruction type, every probe response
    firsts = {}
    for item in ifeval_items:
        for iid in item.data["instruction_id_list"]:
            firsts.setdefault(iid, item)
    subset = list({i.id: i for i in [*ifeval_items[::20], *firsts.values()]}.values())
    assert {i for item in subset for i in item.data["instruction_id_list"]} == set(INSTRUCTIONS)
    compared, mismatches = _compare(reference, ifeval_rows, subset, probe_responses)
    assert compared > 1000
    assert mismatches == []


@pytest.mark.slow
@needs_ifeval
@needs_lm_eval
def test_fidelity_with_reference_on_all_of_ifeval(reference, ifeval_items, ifeval_rows) -> None:
    compared, mismatches = _compare(reference, ifeval_rows, ifeval_items, probe_responses)
    assert compared > 18000
    assert mismatches == []


@needs_lm_eval
def test_reference_agrees_on_the_sample_and_its_near_misses(reference, sample_items) -> None:
    rows = {i.id: {"key": i.data["key"], "prompt": i.prompt, "instruction_id_list": i.data["instruction_id_list"], "kwargs": i.data["kwargs"]} for i in sample_items}
    wrong = _wrong_answers()
    compared, mismatches = _compare(reference, rows, sample_items, lambda item: [item.reference, *wrong[item.id]])
    assert compared >= 2 * sum(len(i.data["instruction_id_list"]) for i in sample_items)
    assert mismatches == []
    for item in sample_items:  # the reference itself accepts every reference response
        strict, _ = reference_follow(reference, rows[item.id], item.reference)
        assert all(strict), item.id
