"""Did pytest take its rootdir or configfile from one of our path options?

pytest picks the rootdir and the configfile (determine_setup in
_pytest/config/findpaths.py) from a first parse of the command line, made
before plugins add their options.  Our options are unknown then, so in
``--report-dir /tmp/x`` the value ``/tmp/x`` counts as a test path: when it
exists, the rootdir moves there, the project's pyproject.toml / pytest.ini is
no longer read, ``testpaths`` no longer applies, and the run collects
something else.  ``--report-dir=/tmp/x`` is one argument, which that first
parse skips as an option.

By the time a plugin runs, the rootdir, the configfile, its ``addopts``
and its ``pythonpath`` have been applied; changing them afterwards would
mean rewriting private Config state and still missing those.  So the check
only tells: it asks pytest's own determine_setup what it would have decided
without our options' values, and when that differs, stops the run with one
line naming the fix, before any conftest, collection or model.
"""

from __future__ import annotations

import inspect
import os
import shlex
from pathlib import Path
from typing import Any, Sequence

import pytest

from .errors import CodeevalError
from .options import PATH_OPTIONS


class RootdirFromOptionError(CodeevalError):
    """A path option written with a space moved pytest's rootdir or configfile."""


def spaced_path_values(args: Sequence[str]) -> list[tuple[str, str]]:
    """(option, value) for each of our path options written as two arguments
    whose value exists: the ones pytest's first parse took for test paths."""
    found = []
    for option, value in zip(args, args[1:]):
        if option in PATH_OPTIONS and not value.startswith("-") and _exists(value):
            found.append((option, value))
    return found


def _exists(value: str) -> bool:
    try:
        return Path(value.split("::")[0]).expanduser().exists()
    except OSError:  # a name too long, say: pytest skips it too
        return False


def _command_line(config: pytest.Config) -> list[str]:
    # What pytest's first parse saw: PYTEST_ADDOPTS, then the arguments.
    return shlex.split(os.environ.get("PYTEST_ADDOPTS", "")) + [str(a) for a in config.invocation_params.args]


def intended_setup(config: pytest.Config) -> tuple[Path, Path | None] | None:
    """The (rootdir, configfile) pytest would pick from the same command line
    with every option known, or None when this pytest's determine_setup cannot
    be called as expected (then there is nothing to compare)."""
    try:
        from _pytest.config.findpaths import determine_setup  # noqa: PLC0415
    except ImportError:
        return None
    ns = config.known_args_namespace  # parsed again after the plugins added their options
    kwargs: dict[str, Any] = {
        "inifile": ns.inifilename,
        "args": [str(a) for a in (ns.file_or_dir or [])],
        "rootdir_cmd_arg": ns.rootdir or None,
        "invocation_dir": config.invocation_params.dir,
    }
    params = inspect.signature(determine_setup).parameters
    if "override_ini" in params:
        kwargs["override_ini"] = ns.override_ini
    if not set(kwargs) <= set(params):
        return None
    try:
        rootpath, inipath, *_ = determine_setup(**kwargs)
    except Exception:  # pytest itself reports a bad -c / --rootdir
        return None
    return Path(rootpath), Path(inipath) if inipath else None


def check_rootdir(config: pytest.Config) -> None:
    """Stop with the fix when a spaced path option moved the rootdir or configfile."""
    ns = config.known_args_namespace
    if getattr(ns, "help", False) or getattr(ns, "version", False):
        return  # --help must work whatever else is on the line
    spaced = spaced_path_values(_command_line(config))
    if not spaced:
        return
    intended = intended_setup(config)
    if intended is None:
        return
    actual = (config.rootpath, config.inipath)
    if (intended[0], intended[1]) == actual:
        return  # e.g. a path inside the project: the same rootdir and configfile either way
    fix = " ".join(f"{option}={value}" for option, value in spaced)
    given = " ".join(f"{option} {value}" for option, value in spaced)
    configfile = actual[1] or "none"
    meant = f"{intended[1]}" if intended[1] else f"rootdir {intended[0]}"
    raise RootdirFromOptionError(
        f"pytest took its rootdir ({actual[0]}) and configfile ({configfile}) from `{given}` instead of "
        f"{meant}: write {fix} (with '=', not a space)."
    )
