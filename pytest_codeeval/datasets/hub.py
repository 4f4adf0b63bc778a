"""Reading from the HuggingFace hub through `datasets`, the way users do,
without ever waiting on a hub that does not answer.

- No network (a dry run, or HF_HUB_OFFLINE=1): only what `datasets` and
  huggingface_hub already cached, read with their own offline switches turned
  on for the call.  A dry run says "not cached here, will download" for the
  rest.
- A real run first asks the hub once, with a short timeout (more attempts
  only with --hub-retries=N).  If it answers, `datasets` loads as usual.  If
  it does not, the cache is used when it holds the dataset, else the run stops
  at once with the usual usage error.  Left alone, `datasets` retries for about
  25 s per dataset (huggingface_hub's backoff of 1+2+4+8+8 s) before giving up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from ..catalog import DatasetSpec
from ..errors import DatasetError, DatasetNotCached, DatasetUnavailable
from .context import LoadContext

PROBE_TIMEOUT_S = 5.0  # the hub answers a HEAD in well under a second when it can be reached
MAX_BACKOFF_S = 8.0
# huggingface_hub retries on these (utils/_http.py): the hub is up but cannot serve now.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# endpoint -> None (the hub answered) or what went wrong; asked once per process.
_probed: dict[str, str | None] = {}


def load_hub_rows(spec: DatasetSpec, ctx: LoadContext, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``spec.hf_id`` (config ``spec.hf_config``, split ``spec.hf_split``)."""
    if not spec.hf_id:
        raise DatasetUnavailable(ctx.missing_message(spec))
    split = split or spec.hf_split or None
    problem = hub_problem(ctx.hub_retries) if ctx.network else None
    if ctx.network and problem is None:
        return _download_rows(spec, ctx, split)
    rows = cached_rows(spec, split)
    if rows is not None:
        return rows
    raise not_here(spec, ctx, problem)


def download_hub_file(spec: DatasetSpec, ctx: LoadContext, filename: str) -> str:
    """A single file of a hub dataset repo (BFCL ships JSON-lines files, not a dataset script)."""
    if not spec.hf_id:
        raise DatasetUnavailable(ctx.missing_message(spec))
    problem = hub_problem(ctx.hub_retries) if ctx.network else None
    if ctx.network and problem is None:
        try:
            from huggingface_hub import hf_hub_download  # noqa: PLC0415
        except ImportError:
            raise DatasetError("the HuggingFace hub needs huggingface_hub: pip install datasets") from None
        try:
            return hf_hub_download(spec.hf_id, filename, repo_type="dataset", revision=spec.revision or None)
        except Exception as e:
            raise DatasetUnavailable(f"{ctx.missing_message(spec)} (hub error: {type(e).__name__}: {e})") from None
    path = cached_file(spec.hf_id, filename, spec.revision)
    if path is not None:
        return path
    raise not_here(spec, ctx, problem)


def not_here(spec: DatasetSpec, ctx: LoadContext, problem: str | None) -> DatasetUnavailable:
    """The error for a dataset that no cache holds and that was not downloaded."""
    if ctx.dry_run and not ctx.offline:
        count = f"{spec.n_items} items " if spec.n_items else ""
        where = ", ".join(x for x in (spec.hf_id, spec.hf_config and f"config {spec.hf_config}",
                                      spec.hf_split and f"split {spec.hf_split}") if x)
        local = f"; a local copy instead: --data-dir=DIR holding {spec.local_path}" if spec.local_path else ""
        return DatasetNotCached(f"not cached here, will download {count}from the HuggingFace hub ({where}){local}")
    if ctx.offline:
        return DatasetUnavailable(f"{ctx.missing_message(spec)} (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set "
                                  "and the `datasets` cache has no copy)")
    retry = (f"after {ctx.hub_retries + 1} attempts" if ctx.hub_retries
             else "one attempt; --hub-retries=N tries N more times")
    return DatasetUnavailable(f"{ctx.missing_message(spec)} (the hub at {hub_endpoint()} did not answer: "
                              f"{problem}; {retry})")


# -- the hub, asked once -------------------------------------------------------


def hub_endpoint() -> str:
    # huggingface_hub reads HF_ENDPOINT at import; the same default here.
    if "huggingface_hub.constants" in sys.modules:
        return str(sys.modules["huggingface_hub.constants"].ENDPOINT)
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_problem(retries: int = 0) -> str | None:
    """None when the hub answers; else what went wrong.  One HEAD request with
    a short timeout, ``1 + retries`` of them with backoff; the answer is kept
    for the rest of the process, so an unreachable hub costs one timeout per
    run, not one per dataset."""
    try:
        from huggingface_hub.utils import get_session  # noqa: PLC0415 - the client `datasets` uses (proxies, TLS)
    except ImportError:
        raise DatasetError("the HuggingFace hub needs huggingface_hub: pip install datasets") from None
    endpoint = hub_endpoint()
    if endpoint in _probed:
        return _probed[endpoint]
    problem: str | None = None
    wait = 1.0
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(wait)
            wait = min(MAX_BACKOFF_S, wait * 2)
        try:
            response = get_session().head(endpoint, timeout=PROBE_TIMEOUT_S)
        except Exception as e:  # DNS, refused, timeout, TLS, proxy: all mean "no answer"
            problem = f"{type(e).__name__}: {e}"
            continue
        if response.status_code not in RETRY_STATUS:
            problem = None
            break
        problem = f"HTTP {response.status_code}"
    _probed[endpoint] = problem
    return problem


# -- what is cached, without a request ------------------------------------------


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """`datasets` and huggingface_hub read HF_HUB_OFFLINE once, at import,
    into module constants that every request checks (datasets.config.
    HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE).  Turned on for
    one call, a request raises at once and `datasets` falls back on its cache;
    they are restored afterwards, so the rest of the process is unchanged."""
    import datasets.config  # noqa: PLC0415
    from huggingface_hub import constants  # noqa: PLC0415

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    # Its "Using the latest cached version ..." warnings say what we already know.
    log = logging.getLogger("datasets")
    level = log.level
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved
        log.setLevel(level)


def datasets_cache_dir() -> Path:
    """Where `datasets` keeps prepared datasets (datasets.config.HF_DATASETS_CACHE),
    computed the same way so that a dry run with nothing cached need not import
    `datasets` (about 1.5 s)."""
    if "datasets.config" in sys.modules:
        return Path(sys.modules["datasets.config"].HF_DATASETS_CACHE).expanduser()
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "datasets"


def maybe_cached(hf_id: str) -> bool:
    """False when `datasets` surely has no copy of ``hf_id``: its cache keeps
    each hub dataset under ``<namespace>___<name>/``.  True means "look"."""
    root = datasets_cache_dir()
    if not root.is_dir():
        return False
    namespace = hf_id.split("/")[0] + "___" if "/" in hf_id else ""
    return any(entry.name.startswith(namespace) for entry in root.iterdir() if entry.is_dir())


def cached_rows(spec: DatasetSpec, split: str | None) -> list[dict[str, Any]] | None:
    """The rows `datasets` has cached for this dataset, config and split, or None."""
    if not maybe_cached(spec.hf_id):
        return None
    try:
        import datasets  # noqa: PLC0415
    except ImportError:
        return None
    args = [spec.hf_id] + ([spec.hf_config] if spec.hf_config else [])
    try:
        with hub_offline():
            ds = datasets.load_dataset(*args, split=split, revision=spec.revision or None)
    except Exception:  # not cached, another config cached, a split missing: all "not here"
        return None
    return [dict(row) for row in ds]


def cached_file(repo_id: str, filename: str, revision: str = "") -> str | None:
    """A file of a hub dataset repo in huggingface_hub's cache, or None (no request)."""
    try:
        from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415
    except ImportError:
        return None
    path = try_to_load_from_cache(repo_id, filename, repo_type="dataset", revision=revision or None)
    return path if isinstance(path, str) else None  # None, or a marker for "known not to exist"


def _download_rows(spec: DatasetSpec, ctx: LoadContext, split: str | None) -> list[dict[str, Any]]:
    try:
        import datasets  # noqa: PLC0415 - heavy, only when a hub dataset is asked for
    except ImportError:
        raise DatasetError(
            f"dataset {spec.name!r} comes from the HuggingFace hub, which needs the `datasets` "
            "package: pip install datasets. Or point at a local copy with --data-dir=DIR."
        ) from None
    args = [spec.hf_id] + ([spec.hf_config] if spec.hf_config else [])
    try:
        ds = datasets.load_dataset(*args, split=split, revision=spec.revision or None)
    except Exception as e:  # auth, missing config, a hub that stopped answering: all mean "not here"
        raise DatasetUnavailable(f"{ctx.missing_message(spec)} (hub error: {type(e).__name__}: {e})") from None
    return [dict(row) for row in ds]
