"""Math word-problem prompts (GSM8K and the suite's reasoning_sample).

Instruct models: asked to reason step by step and to put the final answer
alone on a last line ``#### <number>``, the format of GSM8K's own solutions,
which lm-eval's strict-match filter reads.

Base models: lm-eval's gsm8k task format, ``Question: ...\\nAnswer:`` with its
stop sequences ("Question:", "</s>", "<|im_end|>").  lm-eval runs this task
5-shot (the first five train items); a base model shown no example rarely
writes "#### N", so base prompts carry five worked examples as well.  Ours
are written for this suite (the train split is not shipped), in the same
GSM8K answer style (``<<a*b=c>>`` calculator notes, final ``#### N``), so
the prompt's shape matches lm-eval's even though its example text does not.
"""

from __future__ import annotations

from ..items import Item, Prompt
from . import chat_messages

INSTRUCT = (
    "Solve the following math word problem. Reason step by step, showing your "
    "calculations. Then give the final answer as a plain number on the last line, "
    "in the form \"#### <number>\".\n\n"
    "Question: {question}"
)

# lm-eval gsm8k.yaml: doc_to_text "Question: {{question}}\nAnswer:",
# target_delimiter " ", fewshot_delimiter "\n\n".
BASE_QUESTION = "Question: {question}\nAnswer:"
BASE_EXAMPLE = "Question: {question}\nAnswer: {answer}"
FEWSHOT_DELIMITER = "\n\n"
BASE_STOPS = ("Question:", "</s>", "<|im_end|>")

# Five original worked examples (question, answer) for base models.
FEWSHOT: tuple[tuple[str, str], ...] = (
    (
        "A baker fills 6 trays with 14 rolls each. She sells 59 rolls in the morning. "
        "How many rolls are left?",
        "She baked 6 * 14 = <<6*14=84>>84 rolls.\n"
        "After the morning she has 84 - 59 = <<84-59=25>>25 rolls left.\n#### 25",
    ),
    (
        "Tom reads 12 pages on weekdays and twice as many pages on each weekend day. "
        "How many pages does he read in one week?",
        "On the 5 weekdays he reads 5 * 12 = <<5*12=60>>60 pages.\n"
        "On each weekend day he reads 12 * 2 = <<12*2=24>>24 pages, so 2 * 24 = <<2*24=48>>48 pages on the weekend.\n"
        "In one week he reads 60 + 48 = <<60+48=108>>108 pages.\n#### 108",
    ),
    (
        "A jacket costs $80. It is on sale for 25% off, and Maria pays with a $100 bill. "
        "How much change does she get?",
        "The discount is 80 * 25 / 100 = $<<80*25/100=20>>20.\n"
        "The sale price is 80 - 20 = $<<80-20=60>>60.\n"
        "Her change is 100 - 60 = $<<100-60=40>>40.\n#### 40",
    ),
    (
        "A tank holds 300 liters of water. A pump removes 18 liters per minute for 12 minutes, "
        "then a hose adds 40 liters. How many liters are in the tank now?",
        "The pump removes 18 * 12 = <<18*12=216>>216 liters.\n"
        "That leaves 300 - 216 = <<300-216=84>>84 liters.\n"
        "After the hose there are 84 + 40 = <<84+40=124>>124 liters.\n#### 124",
    ),
    (
        "Three friends share the cost of a $126 dinner equally and each also leaves a $5 tip. "
        "How much does each friend spend?",
        "Each pays 126 / 3 = $<<126/3=42>>42 for the dinner.\n"
        "With the tip each spends 42 + 5 = $<<42+5=47>>47.\n#### 47",
    ),
)

FEWSHOT_TEXT = FEWSHOT_DELIMITER.join(BASE_EXAMPLE.format(question=q, answer=a) for q, a in FEWSHOT)

TEMPLATES = {
    "instruct": INSTRUCT,
    "base": BASE_QUESTION,
    "base_fewshot": FEWSHOT_TEXT,
    "base_stops": "|".join(BASE_STOPS),
}


def build(item: Item, chat: bool, system_prompt: str) -> Prompt:
    if chat:
        user = INSTRUCT.format(question=item.prompt.strip())
        return Prompt(item_id=item.id, messages=chat_messages(user, system_prompt))
    text = FEWSHOT_TEXT + FEWSHOT_DELIMITER + BASE_QUESTION.format(question=item.prompt)
    return Prompt(item_id=item.id, text=text, stop=BASE_STOPS)
