"""How figures are written in the Markdown and HTML reports: rounded to what
they mean, and "—" wherever nothing was measured (never 0).  The JSON keeps
the unrounded values."""

from __future__ import annotations

from typing import Any

DASH = "—"


def pct(value: float | None) -> str:
    """A score or share in percent, one decimal: 54.3%."""
    return DASH if value is None else f"{100 * value:.1f}%"


def points(value: float | None) -> str:
    """A difference of scores in points, signed: +3.2."""
    return DASH if value is None else f"{100 * value:+.1f}"


def seconds(value: float | None) -> str:
    """Wall or engine time: 54.0 s, 0.3 s, 1234 s."""
    if value is None:
        return DASH
    return f"{value:.0f} s" if value >= 1000 else f"{value:.1f} s"


def rate(value: float | None) -> str:
    """Tokens per second: three significant figures at most (12.3, 456, 7890)."""
    if value is None:
        return DASH
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def tokens(perf: dict[str, Any]) -> str:
    """Generated tokens, where an engine counted them: the model-free engines
    (no measured speed) count words, which are no tokens."""
    return DASH if perf.get("tokens_per_s") is None else count(perf.get("completion_tokens"))


def nbytes(n: int | None) -> str:
    """Memory: 1.5 GiB, 830.0 MiB; None or 0 (not measured) is a dash."""
    if not n:
        return DASH
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


OVERLAP = "⚠"  # a figure measured while another engine loaded or generated on the same devices


def memory(perf: dict[str, Any]) -> str:
    """Peak memory with what it is: what vLLM reserved on the GPU, what the
    transformers engine used, or the engine processes' RSS; flagged when
    another engine shared the devices."""
    text = nbytes(perf.get("peak_memory_bytes"))
    kind = {"gpu": "GPU", "gpu_reserved": "GPU reserved", "gpu_used": "GPU used",
            "cpu_rss": "RSS"}.get(perf.get("memory_kind") or "")
    text = f"{text} ({kind})" if kind and text != DASH else text
    return f"{text} {OVERLAP}" if overlapped(perf) and text != DASH else text


def overlapped(perf: dict[str, Any]) -> bool:
    """Whether another engine loaded or generated on the same devices while this one did (overlap.py)."""
    return bool(perf.get("overlapped_with"))


def timed_alone(perf: dict[str, Any]) -> bool:
    """A generation speed that was measured (a timed call) with the devices to itself:
    the only kind a speed ranking, total or plot may use."""
    return perf.get("tokens_per_s") is not None and bool(perf.get("generation_s")) and not overlapped(perf)


def speed(perf: dict[str, Any]) -> str:
    """tokens/s, flagged when another engine shared the devices at the time."""
    text = rate(perf.get("tokens_per_s"))
    return f"{text} {OVERLAP}" if overlapped(perf) and text != DASH else text


def ci(low: float | None, high: float | None) -> str:
    return DASH if low is None or high is None else f"{100 * low:.1f}–{100 * high:.1f}%"


def p_value(p: float | None) -> str:
    """A p-value in a table cell: 0.042, < 0.001."""
    if p is None:
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float) -> str:
    """A p-value in a sentence: p = 0.042, p < 0.001."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
