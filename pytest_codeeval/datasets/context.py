"""Where loaders look for local copies, and whether they may use the network."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..catalog import DatasetSpec

DATA_DIR_ENV = "CODEEVAL_DATA_DIR"
_TRUE = {"1", "ON", "YES", "TRUE"}


def _env_true(name: str) -> bool | None:
    value = os.environ.get(name)
    return None if value is None else value.strip().upper() in _TRUE


def hub_offline_env() -> bool:
    """What `datasets` itself decides from the environment: HF_DATASETS_OFFLINE
    when set, else HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE)."""
    datasets_offline = _env_true("HF_DATASETS_OFFLINE")
    if datasets_offline is not None:
        return datasets_offline
    return bool(_env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"))


@dataclass(frozen=True)
class LoadContext:
    """``data_dir``: a folder laid out like the upstream releases (e.g.
    ``mbpp/mbpp.jsonl``, ``gsm8k/test.jsonl``); from ``--data-dir`` or
    ``$CODEEVAL_DATA_DIR``."""

    data_dir: Path | None = None
    offline: bool = False  # the user forbids the hub (HF_HUB_OFFLINE=1 or HF_DATASETS_OFFLINE=1)
    # --collect-only / --setup-plan: read what is here (shipped sets, --data-dir,
    # the `datasets` and hub caches), never a request; the rest "will download".
    dry_run: bool = False
    hub_retries: int = 0  # further attempts when the hub does not answer (--hub-retries=N)

    def __post_init__(self) -> None:
        if self.data_dir is not None:  # answer keys: never visible to a sandboxed sample
            _hide(self.data_dir)

    @classmethod
    def from_env(cls, data_dir: str | None = None, hub_retries: int = 0) -> "LoadContext":
        raw = data_dir or os.environ.get(DATA_DIR_ENV) or None
        return cls(data_dir=Path(raw).expanduser().resolve() if raw else None, offline=hub_offline_env(),
                   hub_retries=hub_retries)

    @property
    def network(self) -> bool:
        """May a loader send a request to the hub?"""
        return not (self.offline or self.dry_run)

    def for_dry_run(self) -> "LoadContext":
        return replace(self, dry_run=True)

    def local_file(self, spec: DatasetSpec, relative: str | None = None) -> Path | None:
        """The local copy of ``relative`` (default: the spec's local_path), if it exists."""
        rel = relative if relative is not None else spec.local_path
        if not rel:
            return None
        path = Path(rel).expanduser()
        if path.is_absolute():
            found = path if path.exists() else None
        elif self.data_dir is not None and (self.data_dir / path).exists():
            found = self.data_dir / path
        else:
            found = None
        if found is not None:
            _hide(found)
        return found

    def missing_message(self, spec: DatasetSpec) -> str:
        if not spec.local_path:
            return (
                f"dataset {spec.name!r} is not available offline: it is published on the HuggingFace hub "
                f"({spec.hf_id}) and has no local copy here. Go online so `datasets` can fetch it, or export it "
                f"to a JSONL file and set local_path in [tool.codeeval.datasets.{spec.name}]."
            )
        where = f" (looked for {spec.local_path!r} under {self.data_dir})" if self.data_dir else ""
        return (
            f"dataset {spec.name!r} is not available offline{where}. Point at a local copy with "
            f"--data-dir=DIR or ${DATA_DIR_ENV}=DIR (a folder holding {spec.local_path}), "
            f"or set local_path in [tool.codeeval.datasets.{spec.name}], or go online so "
            f"`datasets` can fetch {spec.hf_id or 'it'} from the HuggingFace hub."
        )


def _hide(path: Path) -> None:
    from ..sandbox.isolation import hide_from_samples

    hide_from_samples(path)
