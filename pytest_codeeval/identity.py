"""What decides an engine's output, as plain data: part of every stored
generation's key and of the report's manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .options import RunOptions
from .plan import Case

# Engine settings that change what a model writes (the others only change
# speed or memory: batch width, memory fraction, CUDA graphs).
OUTPUT_SETTINGS = ("dtype", "quantization", "kv_cache_dtype", "max_model_len", "revision")


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:32]


def generation_identity(options: RunOptions, catalog: Catalog, case: Case) -> dict[str, Any]:
    """The engine kind, the model with its revision and weights source, the
    output-changing engine settings and vLLM arguments, and for replay the
    completions file.  It is the identity of the case's *engine*: a LoRA
    adapter shares its base's, and each request adds its adapter, sampling,
    thinking and item (engines/cached.py)."""
    # The preset is part of every key although most of its settings do not
    # change outputs: presets are compared on speed and devices, which needs
    # each model x preset to generate for itself.
    ident: dict[str, Any] = {"engine": options.engine, "model": case.engine_model or case.model, "preset": case.preset}
    if options.engine == "replay":
        assert options.completions is not None
        ident["completions_sha256"] = file_sha(options.completions)
    elif options.engine != "reference":
        model = catalog.model(case.engine_model or case.model)
        settings = catalog.engine_settings(model, catalog.preset(case.preset))
        ident.update(hf_id=model.hf_id, revision=model.revision, dtype=model.dtype, source=model.source,
                     path=model.path,
                     settings={k: settings[k] for k in OUTPUT_SETTINGS if k in settings})
        if options.engine == "server":
            ident["server_model"] = options.server_model or model.hf_id
        elif model.vllm:
            # Every pass-through argument: most change outputs (quantization,
            # tokenizer, chat template, speculative decoding's numerics).
            ident["vllm"] = vllm_identity(model.vllm)
    return ident


def vllm_identity(table: dict[str, Any]) -> dict[str, Any]:
    """The [vllm] table, with a chat template given as a file replaced by the file's hash."""
    out = dict(table)
    template = out.get("chat_template")
    if isinstance(template, str) and "\n" not in template and Path(template).expanduser().is_file():
        out["chat_template"] = {"file": template, "sha256": file_sha(Path(template).expanduser())}
    return out


def adapter_sha(folder: Path) -> str:
    """The hash of a local adapter folder's files (config and weights), in name order."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")):
        h.update(f"{path.name}\0{file_sha(path)}\n".encode())
    return h.hexdigest()[:32]


__all__ = ["OUTPUT_SETTINGS", "file_sha", "generation_identity", "vllm_identity", "adapter_sha"]
