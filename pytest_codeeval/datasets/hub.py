"""Reading from the HuggingFace hub through `datasets`, the way users do."""

from __future__ import annotations

from typing import Any

from ..catalog import DatasetSpec
from ..errors import DatasetError, DatasetUnavailable
from .context import LoadContext


def load_hub_rows(spec: DatasetSpec, ctx: LoadContext, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``spec.hf_id`` (config ``spec.hf_config``, split ``spec.hf_split``)."""
    if not spec.hf_id:
        raise DatasetUnavailable(ctx.missing_message(spec))
    if ctx.offline:
        raise DatasetUnavailable(ctx.missing_message(spec))
    try:
        import datasets  # noqa: PLC0415 - heavy, only when a hub dataset is asked for
    except ImportError:
        raise DatasetError(
            f"dataset {spec.name!r} comes from the HuggingFace hub, which needs the `datasets` "
            "package: pip install datasets. Or point at a local copy with --data-dir."
        ) from None
    args = [spec.hf_id] + ([spec.hf_config] if spec.hf_config else [])
    try:
        ds = datasets.load_dataset(*args, split=split or spec.hf_split or None, revision=spec.revision or None)
    except Exception as e:  # network, auth, missing config: all mean "not here"
        raise DatasetUnavailable(f"{ctx.missing_message(spec)} (hub error: {type(e).__name__}: {e})") from None
    return [dict(row) for row in ds]


def download_hub_file(spec: DatasetSpec, ctx: LoadContext, filename: str) -> str:
    """A single file of a hub dataset repo (BFCL ships JSON-lines files, not a dataset script)."""
    if ctx.offline or not spec.hf_id:
        raise DatasetUnavailable(ctx.missing_message(spec))
    try:
        from huggingface_hub import hf_hub_download  # noqa: PLC0415
    except ImportError:
        raise DatasetError("the HuggingFace hub needs huggingface_hub: pip install datasets") from None
    try:
        return hf_hub_download(spec.hf_id, filename, repo_type="dataset", revision=spec.revision or None)
    except Exception as e:
        raise DatasetUnavailable(f"{ctx.missing_message(spec)} (hub error: {type(e).__name__}: {e})") from None
