"""Every default of the suite in one place (as evalplus keeps its config.py).

Modules import these names instead of restating a number: a default defined
twice drifts (the server's timeout once differed between the session and the
engine).
"""

from __future__ import annotations

import os
from pathlib import Path

# -- where things live --------------------------------------------------------

CACHE_ENV = "CODEEVAL_CACHE_DIR"
DATA_DIR_ENV = "CODEEVAL_DATA_DIR"
STORE_FILENAME = "codeeval.sqlite"
REPORT_DIR_NAME = "reports"


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The suite's cache: the argument, else $CODEEVAL_CACHE_DIR, else
    $XDG_CACHE_HOME/pytest-codeeval, else ~/.cache/pytest-codeeval."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-codeeval"


# -- the plan -----------------------------------------------------------------

DEFAULT_CATEGORY = "cpu_smoke"
DEFAULT_PRESET = "balanced"

# -- generation ---------------------------------------------------------------

SEED = 1234
MAX_NEW_TOKENS = 512  # a dataset without its own budget
THINKING = "model"  # --thinking: each model's catalog default
SAMPLING = "greedy"  # --sampling, unless --temperature/--top-p/--top-k are given (then "user")
MAX_THINKING_TOKENS = 8192  # a thinking model whose catalog entry names no budget
# The budget check before any load estimates a prompt's tokens from its
# length: byte-level BPE tokenizers average about 4 bytes a token on English
# and code, and the estimate errs low (a longer real prompt only shortens the
# generation at the context's end; it never fails a run).
PROMPT_BYTES_PER_TOKEN = 4
CHAT_TEMPLATE_TOKENS = 32  # the chat template's own tokens around a prompt

# -- reports and the gate -------------------------------------------------------

# A case is flagged when at least this share of its samples could not be
# judged (sandbox_error, unverified: out of n), since its score then rests on
# noticeably fewer samples than planned, and not at random (a sandbox error
# hits the heavy items).
NOT_JUDGED_FLAG_SHARE = 0.05
# --max-score-drop when none is given: a case regresses when its score on
# the items it shares with the baseline is lower by more than this AND the
# one-sided paired test finds the drop significant at 5%.
GATE_MAX_SCORE_DROP = 0.05

# -- the OpenAI-compatible server engine ----------------------------------------

SERVER_CONCURRENCY = 32  # requests in flight per model
SERVER_TIMEOUT_S = 600.0  # one request, generation included
SERVER_RETRIES = 5
SERVER_BACKOFF_S = 1.0
SERVER_MAX_BACKOFF_S = 30.0
SERVER_MODELS_TIMEOUT_S = 30.0  # the GET /models check at load

# -- engine processes -----------------------------------------------------------

ENGINE_CLOSE_TIMEOUT_S = 30.0  # waiting for an engine's processes and its GPU memory
# Progress inside an engine call: a line this often where there is no terminal
# (and in the run log); a terminal's line is rewritten in place this often.
PROGRESS_INTERVAL_S = 5.0
PROGRESS_REFRESH_S = 0.5

# -- the sandbox ----------------------------------------------------------------

SANDBOX_CALL_FLOOR_S = 1.0
SANDBOX_LOAD_FLOOR_S = 3.0
SANDBOX_TOTAL_FLOOR_S = 6.0
SANDBOX_TIME_FACTOR = 4.0  # a calibrated limit: max(floor, factor x the reference's runtime)

# -- beyond one machine: Ray (cluster/) -----------------------------------------

# Requests per actor call: each call's answers are stored the moment it returns,
# so a node that dies loses at most the chunk it was generating.  At least the
# widest preset batch (max_num_seqs 256), so the engine stays full but for each
# chunk's tail.
RAY_CHUNK = 256
RAY_REPLACEMENTS = 2  # new actors a replica may get after losing its node
RAY_POLL_S = 2.0  # how often a replica waiting for room on the cluster looks again
RAY_CLOSE_TIMEOUT_S = ENGINE_CLOSE_TIMEOUT_S  # an actor closing its engine before it is killed
RAY_CONNECT_TIMEOUT_S = 10.0  # the TCP probe of --ray-address before ray.init
