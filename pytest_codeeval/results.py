"""The typed result of a case, as inspect_ai types its log (EvalLog, EvalSample).

A ``CaseResult`` is made by the runner (or, for a case that could not run,
by the result collector), crosses from xdist workers to the controller as
plain data (``to_dict``/``from_dict``: builtin types only), and is what the
comparison, the reports and the gate read.  The comparison JSON's ``cases``
are ``to_dict(samples=False)``; the JSON Schema in report/schema/ describes
the same fields, and a test checks the two agree.

A figure that was not measured is ``None`` (shown as "—"), never 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Verdict kinds that say nothing about the model: the harness could not judge
# the sample (sandbox_error).  They are kept out of n and counted apart.
# ("unverified", a sample whose outcome only the sample itself could have
# decided, is never a pass and stays in n: were it left out, a sample could
# lift its model's score by making its own test unverifiable; it is counted
# apart too.)
NOT_JUDGED = frozenset({"sandbox_error"})
UNVERIFIED = "unverified"

STATUSES = ("passed", "failed", "error")


@dataclass
class SampleRow:
    """One scored sample, as the per-sample log shows it."""

    task_id: str  # the dataset item's id
    sample: int  # index among the item's samples (0..n-1)
    passed: bool
    verdict: str  # passed, failed, timeout, no_answer, sandbox_error, ... (the scorer's kinds)
    detail: str = ""  # why: the failing assertion, the missed instructions, ...
    scores: dict[str, float] = field(default_factory=dict)  # per-sample numbers the metrics aggregate
    prompt: str = ""  # what the engine saw, rendered
    raw_output: str = ""  # what the engine wrote
    reasoning: str | None = None  # the <think> block, split off before scoring
    extracted: str | None = None  # what the scorer judged (the program, the number, the calls)
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop", "length" (cut off by the token limit), ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Performance:
    """What a case cost.  ``None``: not measured in this run (shown as "—")."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Engine time of this case's samples: their share of the engine calls
    # that made them (stored samples keep the share of the call that made them).
    generation_s: float | None = None
    # Throughput of the engine calls that made this case's samples; None for
    # model-free engines (reference, replay) and when no call was timed.
    tokens_per_s: float | None = None
    scoring_s: float | None = None
    load_s: float | None = None  # loading the model in this run; None when it was not loaded here
    prepare_s: float | None = None  # one-time preparation before the load (conversion, download)
    peak_memory_bytes: int | None = None
    memory_kind: str | None = None  # "gpu" (NVML) or "cpu_rss" (the engine's processes)
    device: str | None = None
    devices: list[int | str] | None = None  # the GPUs its engine ran on (placement.py); None without
    host: str | None = None  # the machine its samples were generated on
    # The Ray node(s) whose engines generated its samples (--ray-address; comma-separated when a
    # replica moved or several ran); None when they were generated outside a Ray cluster.
    node: str | None = None
    # When the engine calls that made its samples ran in this run: [start, end] (epoch seconds),
    # what the controller compares to find engines that generated at the same time on the same devices.
    windows: list[list[float]] | None = None
    # Other engines (model@preset) that generated on the same host and devices while this case's
    # calls ran (filled by the controller): its speed and memory figures are not comparable.
    overlapped_with: list[str] | None = None
    generated: int = 0  # samples generated in this run
    generations_reused: int = 0  # samples taken from the store
    verdicts_reused: int = 0
    scored: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Performance":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass
class CaseResult:
    """One model x preset x dataset case, end to end."""

    case_id: str
    model: str
    preset: str
    dataset: str
    task_type: str = ""
    categories: list[str] = field(default_factory=list)
    status: str = "passed"  # passed | failed (a gate or --ground-truth failed it) | error (it could not run)
    n_items: int = 0
    n_samples: int = 1  # samples per item
    primary_metric: str = ""
    score: float | None = None  # the primary metric; None when the case did not complete
    metrics: dict[str, float] = field(default_factory=dict)
    # Each item's contribution to the primary metric (its mean is the score):
    # what paired comparisons and the gate's paired test use.
    item_scores: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)  # verdict kind -> samples
    not_judged: int = 0  # samples kept out of n (NOT_JUDGED kinds)
    # The cost of a token budget: the share of samples the engine cut off at
    # the token limit (finish_reason "length"), and the share whose <think>
    # block never closed (no answer).  None when there are no samples.
    cut_off: float | None = None
    unclosed_thinking: float | None = None
    scorer: dict[str, Any] = field(default_factory=dict)  # name, version, primary_metric
    prompt_template_hash: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)  # the engine's own description
    performance: Performance = field(default_factory=Performance)
    started_at: float = 0.0
    wall_s: float = 0.0
    error: str | None = None  # why the case could not run (status "error")
    cut_short: str | None = None  # its engine died during the run (EngineDied): why (interrupt.py marks it)
    ci: dict[str, Any] | None = None  # 95% interval of the score (filled by the comparison)
    # The gate's findings (None: not gated): regressions ("regression": true, the case fails)
    # and notes (the paired test's figures, a sample too small to detect the allowed drop).
    gating: list[dict[str, Any]] | None = None
    sample_log: str | None = None  # relative path of the per-sample log (filled by the report writer)
    samples: list[SampleRow] = field(default_factory=list)

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("performance", "samples")}
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}
        data["performance"] = self.performance.to_dict()
        if samples:
            data["samples"] = [s.to_dict() for s in self.samples]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CaseResult":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["performance"] = Performance.from_dict(data.get("performance"))
        values["samples"] = [SampleRow(**row) for row in data.get("samples") or []]
        return cls(**values)

    @classmethod
    def errored(cls, case: dict[str, Any], error: str, cut_short: str | None = None) -> "CaseResult":
        """A case that could not run (its model did not load, its engine died)."""
        return cls(case_id=case["id"], model=case["model"], preset=case["preset"], dataset=case["dataset"],
                   categories=list(case.get("categories", [])), status="error", error=error, cut_short=cut_short)

    @property
    def completed(self) -> bool:
        return self.status != "error" and self.score is not None


def case_fields() -> tuple[str, ...]:
    """The fields a comparison case carries (everything but the samples), in order."""
    return tuple(f.name for f in fields(CaseResult) if f.name != "samples")


def performance_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Performance))


__all__ = ["CaseResult", "SampleRow", "Performance", "NOT_JUDGED", "UNVERIFIED", "STATUSES", "case_fields", "performance_fields"]
