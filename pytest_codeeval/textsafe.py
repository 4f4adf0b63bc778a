"""Text from models and samples, made safe to store and show.

Python strings may hold lone surrogates (``chr(0xD800)``), which UTF-8
cannot encode: SQLite, JSON files and HTML writers then raise, and one
sample would turn its whole case into an error.  Everything a model or a
sample wrote passes through ``safe_text`` before it is kept.
"""

from __future__ import annotations

from typing import Any


def safe_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # only surrogates cannot be encoded
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def safe_value(value: Any) -> Any:
    """``safe_text`` applied to every string inside plain data (dicts, lists)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_value(k): safe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(safe_value(v) for v in value)
    return value


__all__ = ["safe_text", "safe_value"]
