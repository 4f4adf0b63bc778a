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
    output-changing engine settings, and for replay the completions file."""
    # The preset is part of every key although most of its settings do not
    # change outputs: presets are compared on speed and devices, which needs
    # each model x preset to generate for itself.
    ident: dict[str, Any] = {"engine": options.engine, "model": case.model, "preset": case.preset}
    if options.engine == "replay":
        assert options.completions is not None
        ident["completions_sha256"] = file_sha(options.completions)
    elif options.engine != "reference":
        model = catalog.model(case.model)
        settings = catalog.engine_settings(model, catalog.preset(case.preset))
        ident.update(hf_id=model.hf_id, revision=model.revision, dtype=model.dtype, source=model.source,
                     path=model.path,
                     settings={k: settings[k] for k in OUTPUT_SETTINGS if k in settings})
        if options.engine == "server":
            ident["server_model"] = options.server_model or model.hf_id
    return ident


__all__ = ["OUTPUT_SETTINGS", "file_sha", "generation_identity"]
