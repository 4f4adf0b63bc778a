"""IFEval's instruction checkers, one function per instruction id.

Each function is the ``check_following`` of the matching class in
google-research ``instruction_following_eval/instructions.py`` (Apache-2.0;
the same code lm-eval ships as ``lm_eval/tasks/ifeval/instructions.py``),
with the argument normalisation its ``build_description`` applies (strip,
lower-case).  Where the reference draws a *random* value because an argument
is missing or out of range (it builds instructions for generation too), we
raise ``InstructionError`` instead: a scorer must be deterministic, and every
record of the published set gives all its arguments.

Keywords are used as regular expressions, unescaped, exactly as in the
reference (``re.search(keyword, value, re.IGNORECASE)``).
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import text

LESS_THAN, AT_LEAST = "less than", "at least"
COMPARISON_RELATIONS = (LESS_THAN, AT_LEAST)
CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


class InstructionError(ValueError):
    """An instruction id is unknown or its arguments are missing or invalid."""


def _compare(count: int, relation: str, threshold: int) -> bool:
    # The reference: "less than" -> count < threshold, "at least" -> count >= threshold.
    return count < threshold if relation == LESS_THAN else count >= threshold


# ---- keywords ---------------------------------------------------------------


def keywords_existence(value: str, *, keywords: list[str]) -> bool:
    return all(re.search(k, value, flags=re.IGNORECASE) for k in keywords)


def keywords_frequency(value: str, *, keyword: str, frequency: int, relation: str) -> bool:
    occurrences = len(re.findall(keyword.strip(), value, flags=re.IGNORECASE))
    return _compare(occurrences, relation, frequency)


def keywords_forbidden_words(value: str, *, forbidden_words: list[str]) -> bool:
    return not any(re.search(r"\b" + w + r"\b", value, flags=re.IGNORECASE) for w in forbidden_words)


def keywords_letter_frequency(value: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    # Deviation: for a "letter" that is not an ASCII letter the reference
    # checks a *random* letter instead (IFEval records 1122 '#' and 1129 '!'
    # hit this), so its verdict there changes from run to run.  We count the
    # character the prompt asks for, which is deterministic and what it means.
    letters = collections.Counter(value.lower())
    return _compare(letters[letter.strip().lower()], let_relation, let_frequency)


# ---- language ---------------------------------------------------------------


def language_response_language(value: str, *, language: str) -> bool:
    try:
        return text.detect_language(value) == language
    except text.LanguageUndetectable:
        return True  # the reference counts an undetectable text as followed


# ---- length constraints -----------------------------------------------------


def length_number_sentences(value: str, *, num_sentences: int, relation: str) -> bool:
    return _compare(text.count_sentences(value), relation, num_sentences)


def length_number_paragraphs(value: str, *, num_paragraphs: int) -> bool:
    # Paragraphs are separated by the markdown divider ***.
    paragraphs = re.split(r"\s?\*\*\*\s?", value)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index == 0 or index == len(paragraphs) - 1:
                count -= 1
            else:
                return False  # an empty paragraph between two dividers
    return count == num_paragraphs


def length_number_words(value: str, *, num_words: int, relation: str) -> bool:
    return _compare(text.count_words(value), relation, num_words)


def length_nth_paragraph_first_word(value: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    # Here paragraphs are separated by a blank line, not by ***.
    paragraphs = re.split(r"\n\n", value)
    count = len(paragraphs) - sum(1 for p in paragraphs if not p.strip())
    if nth_paragraph > count:
        return False
    paragraph = paragraphs[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    found = ""
    for letter in word:
        if letter in {".", ",", "?", "!", "'", '"'}:
            break
        found += letter.lower()
    return count == num_paragraphs and found == first_word.lower()


# ---- detectable content -----------------------------------------------------


def content_number_placeholders(value: str, *, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", value)) >= num_placeholders


def content_postscript(value: str, *, postscript_marker: str) -> bool:
    marker = postscript_marker.strip()
    value = value.lower()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return bool(re.findall(pattern, value, flags=re.MULTILINE))


# ---- detectable format ------------------------------------------------------


def format_number_bullet_lists(value: str, *, num_bullets: int) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", value, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", value, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def format_constrained_response(value: str) -> bool:
    value = value.strip()
    return any(option in value for option in CONSTRAINED_RESPONSE_OPTIONS)


def format_number_highlighted_sections(value: str, *, num_highlights: int) -> bool:
    count = 0
    for h in re.findall(r"\*[^\n\*]*\*", value):
        if h.strip("*").strip():
            count += 1
    for h in re.findall(r"\*\*[^\n\*]*\*\*", value):
        if h.removeprefix("**").removesuffix("**").strip():
            count += 1
    return count >= num_highlights


def format_multiple_sections(value: str, *, section_spliter: str, num_sections: int) -> bool:
    pattern = r"\s?" + section_spliter.strip() + r"\s?\d+\s?"
    return len(re.split(pattern, value)) - 1 >= num_sections


def format_json(value: str) -> bool:
    value = (
        value.strip()
        .removeprefix("```json")
        .removeprefix("```Json")
        .removeprefix("```JSON")
        .removeprefix("```")
        .removesuffix("```")
        .strip()
    )
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def format_title(value: str) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", value))


# ---- combination ------------------------------------------------------------


def combination_two_responses(value: str) -> bool:
    valid: list[str] = []
    parts = value.split("******")
    for index, part in enumerate(parts):
        if not part.strip():
            if index != 0 and index != len(parts) - 1:
                return False
        else:
            valid.append(part)
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


def combination_repeat_prompt(value: str, *, prompt_to_repeat: str) -> bool:
    return value.strip().lower().startswith(prompt_to_repeat.strip().lower())


# ---- start / end ------------------------------------------------------------


def startend_end_checker(value: str, *, end_phrase: str) -> bool:
    return value.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def startend_quotation(value: str) -> bool:
    value = value.strip()
    return len(value) > 1 and value[0] == '"' and value[-1] == '"'


# ---- change case ------------------------------------------------------------


def case_capital_word_frequency(value: str, *, capital_frequency: int, capital_relation: str) -> bool:
    capitals = sum(1 for word in text.word_tokenize(value) if word.isupper())
    return _compare(capitals, capital_relation, capital_frequency)


def case_english_capital(value: str) -> bool:
    try:
        return value.isupper() and text.detect_language(value) == "en"
    except text.LanguageUndetectable:
        return True


def case_english_lowercase(value: str) -> bool:
    try:
        return value.islower() and text.detect_language(value) == "en"
    except text.LanguageUndetectable:
        return True


# ---- punctuation ------------------------------------------------------------


def punctuation_no_comma(value: str) -> bool:
    return not re.search(r"\,", value)


# ---- registry ---------------------------------------------------------------

INT, STR, STR_LIST, RELATION = "int", "str", "list[str]", "relation"


@dataclass(frozen=True)
class InstructionType:
    """One instruction id: its checker and the arguments it takes (name -> kind)."""

    id: str
    check: Callable[..., bool]
    args: Mapping[str, str]


_TYPES: tuple[InstructionType, ...] = (
    InstructionType("keywords:existence", keywords_existence, {"keywords": STR_LIST}),
    InstructionType(
        "keywords:frequency", keywords_frequency, {"keyword": STR, "frequency": INT, "relation": RELATION}
    ),
    InstructionType("keywords:forbidden_words", keywords_forbidden_words, {"forbidden_words": STR_LIST}),
    InstructionType(
        "keywords:letter_frequency",
        keywords_letter_frequency,
        {"letter": STR, "let_frequency": INT, "let_relation": RELATION},
    ),
    InstructionType("language:response_language", language_response_language, {"language": STR}),
    InstructionType(
        "length_constraints:number_sentences", length_number_sentences, {"num_sentences": INT, "relation": RELATION}
    ),
    InstructionType("length_constraints:number_paragraphs", length_number_paragraphs, {"num_paragraphs": INT}),
    InstructionType("length_constraints:number_words", length_number_words, {"num_words": INT, "relation": RELATION}),
    InstructionType(
        "length_constraints:nth_paragraph_first_word",
        length_nth_paragraph_first_word,
        {"num_paragraphs": INT, "nth_paragraph": INT, "first_word": STR},
    ),
    InstructionType("detectable_content:number_placeholders", content_number_placeholders, {"num_placeholders": INT}),
    InstructionType("detectable_content:postscript", content_postscript, {"postscript_marker": STR}),
    InstructionType("detectable_format:number_bullet_lists", format_number_bullet_lists, {"num_bullets": INT}),
    InstructionType("detectable_format:constrained_response", format_constrained_response, {}),
    InstructionType(
        "detectable_format:number_highlighted_sections", format_number_highlighted_sections, {"num_highlights": INT}
    ),
    InstructionType(
        "detectable_format:multiple_sections",
        format_multiple_sections,
        {"section_spliter": STR, "num_sections": INT},
    ),
    InstructionType("detectable_format:json_format", format_json, {}),
    InstructionType("detectable_format:title", format_title, {}),
    InstructionType("combination:two_responses", combination_two_responses, {}),
    InstructionType("combination:repeat_prompt", combination_repeat_prompt, {"prompt_to_repeat": STR}),
    InstructionType("startend:end_checker", startend_end_checker, {"end_phrase": STR}),
    InstructionType("startend:quotation", startend_quotation, {}),
    InstructionType(
        "change_case:capital_word_frequency",
        case_capital_word_frequency,
        {"capital_frequency": INT, "capital_relation": RELATION},
    ),
    InstructionType("change_case:english_capital", case_english_capital, {}),
    InstructionType("change_case:english_lowercase", case_english_lowercase, {}),
    InstructionType("punctuation:no_comma", punctuation_no_comma, {}),
)

INSTRUCTIONS: dict[str, InstructionType] = {t.id: t for t in _TYPES}


def clean_kwargs(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Drop None values: the HuggingFace copy of IFEval gives every record
    every argument name, None where unused (lm-eval drops them the same way)."""
    return {k: v for k, v in (kwargs or {}).items() if v is not None}


def validate(instruction_id: str, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The checked, cleaned arguments of one instruction; InstructionError says what is wrong."""
    try:
        itype = INSTRUCTIONS[instruction_id]
    except KeyError:
        raise InstructionError(
            f"unknown IFEval instruction id {instruction_id!r}; known ids: {', '.join(INSTRUCTIONS)}"
        ) from None
    args = clean_kwargs(kwargs)
    unexpected = sorted(set(args) - set(itype.args))
    if unexpected:
        raise InstructionError(
            f"{instruction_id}: unexpected argument(s) {', '.join(unexpected)}; it takes "
            f"{', '.join(itype.args) or 'no arguments'}"
        )
    missing = [a for a in itype.args if a not in args]
    if missing:
        raise InstructionError(f"{instruction_id}: missing argument(s) {', '.join(missing)}")
    for name, kind in itype.args.items():
        v = args[name]
        if kind == INT and isinstance(v, float) and v.is_integer():
            v = args[name] = int(v)  # a JSON/Arrow round trip may turn 3 into 3.0
        if kind == INT and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise InstructionError(f"{instruction_id}: {name} must be a non-negative integer, got {v!r}")
        if kind == STR and not (isinstance(v, str) and v.strip()):
            raise InstructionError(f"{instruction_id}: {name} must be a non-empty string, got {v!r}")
        if kind == STR_LIST and not (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)):
            raise InstructionError(f"{instruction_id}: {name} must be a non-empty list of strings, got {v!r}")
        if kind == RELATION and v not in COMPARISON_RELATIONS:
            raise InstructionError(
                f"{instruction_id}: {name} must be one of {', '.join(COMPARISON_RELATIONS)}, got {v!r}"
            )
    if instruction_id == "keywords:letter_frequency" and len(args["letter"].strip()) != 1:
        raise InstructionError(f"{instruction_id}: letter must be one character, got {args['letter']!r}")
    if instruction_id == "length_constraints:nth_paragraph_first_word":
        if not 1 <= args["nth_paragraph"] <= args["num_paragraphs"]:
            raise InstructionError(f"{instruction_id}: nth_paragraph must be between 1 and num_paragraphs")
    return args


def check(instruction_id: str, kwargs: Mapping[str, Any] | None, response: str) -> bool:
    """Whether ``response`` follows one instruction (as is: the strict test of one variant).

    An empty or blank response follows nothing, as in the reference's
    ``response.strip() and instruction.check_following(response)``.
    """
    args = validate(instruction_id, kwargs)
    if not response.strip():
        return False
    return bool(INSTRUCTIONS[instruction_id].check(response, **args))
