"""How each case asks its model to generate: thinking, budgets and sampling.

The defaults of a harness decide comparisons: a thinking model (Qwen3, the
R1 distills) given a code budget and greedy decoding ends most replies inside
an unclosed ``<think>`` block and loses to models it beats.  So each request
carries what its model's authors ask for:

* **thinking**: a model whose chat template reads ``enable_thinking``
  (``thinking_switch``) is switched on or off by ``--thinking`` (``model``:
  its catalog default); the value reaches the template as
  ``chat_template_kwargs``.  A model without a switch thinks always
  (``reasoning = true``) or never; asking it for the other state is a usage
  error naming the model.
* **budget**: a model that thinks gets its thinking budget
  (``--max-thinking-tokens``, else its catalog ``max_thinking_tokens``) on
  top of the dataset's answer budget; the sum must fit the context the
  engine runs with (``max_model_len``, which a preset may cap), with room for
  the longest prompt, or the run stops before any load.
* **sampling**: ``--sampling greedy`` (the default), ``model`` (the model's
  pinned settings, with thinking off its ``sampling_thinking_off`` ones, and
  what is not pinned from its generation_config.json), or ``user``
  (``--temperature/--top-p/--top-k``).  A model that thinks, run greedy,
  gets a warning: its authors advise against it.

All of it lives in the request's ``SamplingConfig``, so it is part of each
generation's store key and of the case's ``sampling`` in the report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from . import defaults
from .catalog import DatasetSpec, ModelSpec
from .engines.base import SamplingConfig
from .errors import CodeevalError, DatasetUnavailable
from .options import RunOptions


def thinking_state(model: ModelSpec, option: str) -> bool | None:
    """The value for ``enable_thinking`` (None: the model has no switch).

    A model without a switch thinks when it is a reasoning model; asking it
    for the state it cannot take is a usage error."""
    if model.thinking_switch:
        return model.thinking_default if option == "model" else option == "on"
    if option != "model" and (option == "on") != model.reasoning:
        always = "always thinks" if model.reasoning else "never thinks"
        raise CodeevalError(
            f"--thinking {option}: model {model.name!r} has no thinking switch (it {always}; its chat template "
            f"does not read enable_thinking). Use --thinking model, or leave {model.name} out with --models; if its "
            f"template does take enable_thinking, set thinking_switch = true in [models.{model.name}]."
        )
    return None


def thinks(model: ModelSpec, option: str) -> bool:
    state = thinking_state(model, option)
    return model.reasoning if state is None else state


def thinking_budget(model: ModelSpec, options: RunOptions) -> int:
    if not thinks(model, options.thinking):
        return 0
    if options.max_thinking_tokens is not None:
        return options.max_thinking_tokens
    return model.max_thinking_tokens or defaults.MAX_THINKING_TOKENS


def sampling_values(model: ModelSpec, options: RunOptions, thinking: bool | None) -> dict[str, Any]:
    """temperature, top_p, top_k, ... for the run's --sampling mode (None: not set here)."""
    if options.sampling == "greedy":
        return {"temperature": 0.0, "top_p": 1.0}
    if options.sampling == "user":
        return {"temperature": options.temperature, "top_p": options.top_p, "top_k": options.top_k}
    pinned = model.sampling_thinking_off if thinking is False and model.sampling_thinking_off else model.sampling
    return {k: (int(v) if k == "top_k" else float(v)) for k, v in pinned.items()}


def sampling_config(model: ModelSpec, dataset: DatasetSpec, options: RunOptions) -> SamplingConfig:
    """Everything one request of (model, dataset) asks of the engine."""
    state = thinking_state(model, options.thinking)
    budget = thinking_budget(model, options)
    answer = options.max_new_tokens or dataset.max_new_tokens
    return SamplingConfig(
        max_new_tokens=answer + budget, n=options.n_samples, seed=options.seed, mode=options.sampling,
        thinking=state, max_thinking_tokens=budget,
        **{"temperature": None, "top_p": None, **sampling_values(model, options, state)},
    )


def plan_entry(sampling: SamplingConfig, max_model_len: int | None) -> dict[str, Any]:
    """A case's ``generation`` object in the dry-run plan."""
    return {
        "thinking": None if sampling.thinking is None else ("on" if sampling.thinking else "off"),
        "max_new_tokens": sampling.max_new_tokens,
        "max_thinking_tokens": sampling.max_thinking_tokens,
        "answer_tokens": sampling.max_new_tokens - sampling.max_thinking_tokens,
        "max_model_len": max_model_len,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "sampling": sampling.mode,
    }


def estimated_prompt_tokens(rendered: Sequence[str]) -> int:
    """A low estimate of the longest prompt's tokens (defaults.PROMPT_BYTES_PER_TOKEN)."""
    longest = max((len(text.encode()) for text in rendered), default=0)
    return math.ceil(longest / defaults.PROMPT_BYTES_PER_TOKEN) + defaults.CHAT_TEMPLATE_TOKENS if longest else 0


@dataclass(frozen=True)
class BudgetCheck:
    """One case's budget against the context its engine runs with."""

    case_id: str
    model: ModelSpec
    sampling: SamplingConfig
    max_model_len: int
    prompt_tokens: int  # estimated, longest prompt
    capped_by: str = ""  # the preset whose max_model_len caps the model's context, if one does

    def problem(self) -> str | None:
        need = self.sampling.max_new_tokens + self.prompt_tokens
        if need <= self.max_model_len:
            return None
        s = self.sampling
        parts = f"{s.max_thinking_tokens} thinking + " if s.max_thinking_tokens else ""
        parts += f"{s.max_new_tokens - s.max_thinking_tokens} answer tokens + ~{self.prompt_tokens} for the longest prompt"
        context = (f"max_model_len {self.max_model_len} (the {self.capped_by} preset caps the model's "
                   f"{self.model.max_model_len})" if self.capped_by else f"its max_model_len {self.max_model_len}")
        fixes = []
        if s.max_thinking_tokens:
            room = self.max_model_len - self.prompt_tokens - (s.max_new_tokens - s.max_thinking_tokens)
            if self.model.thinking_switch:
                fixes.append("--thinking off")
            if room > 0:
                fixes.append(f"--max-thinking-tokens {room} or less")
        else:
            fixes.append("a smaller --max-new-tokens")
        if self.capped_by:
            fixes.append("a preset that does not cap the context (--preset balanced)")
        return (f"case {self.case_id}: the budget does not fit the model's context: {parts} = {need} tokens, "
                f"more than {context}. Use {', or '.join(fixes)}.")


def check_cases(state: Any, cases: Sequence[Any]) -> list[str]:
    """Check each case of a session (session.CodeevalSession) before any load: raises the
    usage error of the first that cannot run as planned; returns the warnings."""
    if state.options.pseudo_model is not None:
        return []
    notes: list[str] = []
    for case in cases:
        model, dataset = state.catalog.model(case.model), state.catalog.dataset(case.dataset)
        sampling = state.sampling(dataset, model)  # raises for a --thinking the model cannot take
        try:
            prompts = [r.prompt.render() for r in state.requests(case)]
        except DatasetUnavailable:  # a dry run goes on without it: the budget alone is checked
            prompts = []
        base = state.catalog.model(case.engine_model or case.model)
        limit = state.max_model_len(case) or base.max_model_len
        capped = (case.preset if state.options.engine == "vllm" and limit < base.max_model_len
                  and not base.engine.get("max_model_len") else "")
        problem = BudgetCheck(case.id, base, sampling, limit, estimated_prompt_tokens(prompts), capped).problem()
        if problem:
            raise CodeevalError(problem)
        notes += [n for n in warnings_for(model, sampling) if n not in notes]
    return notes


_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def with_thinking_opened(text: str, sampling: SamplingConfig, rendered_prompt: str | None = None) -> str:
    """A reply as the scorers and the ``unclosed_thinking`` share must read it.

    Some chat templates open the think block in the prompt (the DeepSeek-R1
    distills' ends with ``<think>\n``): the reply then carries only its close,
    and one cut off while thinking carries no tag at all, which would read as
    a plain answer.  For a request that thinks, such a reply gets its opening
    tag back: from the rendered prompt when the engine has it, else whenever
    the reply has neither tag (a model that thinks writes at least one)."""
    if not (sampling.thinking or (sampling.thinking is None and sampling.max_thinking_tokens)):
        return text
    if _THINK_OPEN.search(text):
        return text
    if rendered_prompt is not None:
        opened = rendered_prompt.rstrip().lower().endswith("<think>")
    else:
        opened = _THINK_CLOSE.search(text) is None
    return "<think>\n" + text if opened else text


def warnings_for(model: ModelSpec, sampling: SamplingConfig) -> list[str]:
    if sampling.max_thinking_tokens and sampling.greedy:
        return [f"model {model.name} thinks and decodes greedily (--sampling {sampling.mode or 'greedy'}): its "
                "authors advise against greedy decoding for thinking (endless repetitions, lower scores). "
                "Use --sampling model for its recommended settings."]
    return []


__all__ = ["thinking_state", "thinks", "thinking_budget", "sampling_values", "sampling_config",
           "plan_entry", "estimated_prompt_tokens", "BudgetCheck", "check_cases", "with_thinking_opened", "warnings_for"]
