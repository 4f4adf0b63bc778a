"""Isolation properties of the sandbox, checked from inside a sample.

Each probe is a program defining ``probe()``; the trusted judge's test
asserts on the plain data it returns.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from pytest_codeeval.sandbox import (LEVELS, Limits, SampleJob, SandboxPool, TimeLimits, probe_isolation,
                                     samples_cannot_import)
from pytest_codeeval.sandbox.isolation import _works, closed_ancestors, is_root, python_dirs
from pytest_codeeval.sandbox.worker import started_by

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
TL = TimeLimits(load_s=3.0, call_s=2.0, total_s=6.0)


def job(body: str, test: str) -> SampleJob:
    program = "def probe():\n" + textwrap.indent(textwrap.dedent(body), "    ")
    return SampleJob(program=program, entry_point="probe", test=textwrap.dedent(test), time_limits=TL)


@pytest.fixture(scope="module")
def pool() -> SandboxPool:
    with SandboxPool(workers=1, limits=Limits(output_bytes=64 * 1024)) as p:
        yield p
    left = [p for p in psutil.process_iter(["cmdline"]) if started_by(p.info["cmdline"] or [], os.getpid())]
    assert [p for p in left if p.status() != psutil.STATUS_ZOMBIE] == []


def run(pool: SandboxPool, body: str, test: str) -> tuple[str, str]:
    [outcome] = pool.run([job(body, test)], rerun_timeouts=False)
    return outcome.verdict, outcome.detail


def test_level_is_probed_and_cached() -> None:
    level = probe_isolation()
    assert level in ("bubblewrap", "namespaces", "rlimits")
    assert probe_isolation() is level
    if os.path.exists("/usr/bin/bwrap"):
        assert level == "bubblewrap"


def test_no_network(pool: SandboxPool) -> None:
    body = """
    import socket
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("1.1.1.1", 53))
    except OSError as e:
        return "refused: " + type(e).__name__
    return "connected"
    """
    assert run(pool, body, "def check(c):\n    assert c().startswith('refused')\n") == ("passed", "")


def test_environment_is_empty(pool: SandboxPool, monkeypatch: pytest.MonkeyPatch) -> None:
    os.environ["CODEEVAL_SECRET_PROBE"] = "leak"
    try:
        # os.environ, and the block the server was started with (/proc/self/environ,
        # which still holds the server's own LD_BIND_NOW: ours, not the harness's;
        # unreadable anyway once the sample has dropped from root to its uid)
        body = ("import os\ntry:\n    raw = open('/proc/self/environ', 'rb').read().decode()\n"
                "except PermissionError:\n    raw = ''\nreturn sorted(os.environ), raw\n")
        test = ("def check(c):\n    env, raw = c()\n    assert env == [], env\n"
                "    assert not [v for v in raw.split('\\0') if v and not v.startswith('LD_BIND_NOW=')], raw\n")
        # a fresh server sees the variable if anything leaked
        pool.close()
        assert run(pool, body, test) == ("passed", "")
    finally:
        del os.environ["CODEEVAL_SECRET_PROBE"]


@pytest.mark.skipif(probe_isolation() == "rlimits", reason="hiding folders needs namespaces")
def test_cannot_see_datasets_repo_or_home(pool: SandboxPool) -> None:
    paths = [str(SHARED / "sandbox-cases" / "expected.json"), str(REPO / "pyproject.toml"), str(SHARED / "datasets"),
             str(Path.cwd())]
    body = f"import os\nreturn [os.path.exists(p) for p in {paths!r}]\n"
    assert run(pool, body, "def check(c):\n    assert c() == [False, False, False, False]\n") == ("passed", "")
    # home: at most the folders that lead to the interpreter (e.g. ~/.pyenv), never caches or reports
    home = str(Path.home())
    allowed = sorted({Path(os.path.relpath(d, home)).parts[0] for d in python_dirs() if d.startswith(home + "/")})
    body = f"import os\ntry:\n    return sorted(os.listdir({home!r}))\nexcept OSError:\n    return []\n"
    assert run(pool, body, f"def check(c):\n    assert set(c()) <= set({allowed!r}), c()\n") == ("passed", "")


def test_system_is_read_only_and_workdir_private(pool: SandboxPool, tmp_path: Path) -> None:
    body = """
    import os
    out = []
    for target in ("/usr/codeeval-probe", "/etc/codeeval-probe"):
        try:
            open(target, "w").write("x")
            out.append("wrote " + target)
        except OSError:
            out.append("refused")
    open("here.txt", "w").write("scratch")  # the private working folder is writable
    out.append(os.getcwd().startswith("/tmp/"))
    return out
    """
    assert run(pool, body, "def check(c):\n    assert c() == ['refused', 'refused', True]\n") == ("passed", "")
    assert not os.path.exists("/usr/codeeval-probe") and not os.path.exists("/etc/codeeval-probe")
    # the next sample starts from a clean folder
    assert run(pool, "import os\nreturn os.listdir('.')\n", "def check(c):\n    assert c() == []\n") == ("passed", "")


def test_stdin_is_dev_null(pool: SandboxPool) -> None:
    body = "import sys\nreturn sys.stdin.read()\n"
    assert run(pool, body, "def check(c):\n    assert c() == ''\n") == ("passed", "")


def test_output_is_captured_and_capped(pool: SandboxPool) -> None:
    body = "print('PASSED ' * 50000)\nreturn 1\n"
    verdict, _ = run(pool, body, "def check(c):\n    assert c() == 1\n")
    assert verdict == "output_limit"
    assert run(pool, "print('a little')\nreturn 1\n", "def check(c):\n    assert c() == 1\n") == ("passed", "")


@pytest.mark.skipif(not is_root(), reason="the uid drop happens when the harness is root")
def test_sample_runs_unprivileged_as_root(pool: SandboxPool) -> None:
    assert run(pool, "import os\nreturn os.getuid()\n", "def check(c):\n    assert c() != 0\n") == ("passed", "")


def test_fork_bomb_is_contained_and_killed(pool: SandboxPool) -> None:
    body = """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
    verdict, _ = run(pool, body, "def check(c):\n    c()\n")
    assert verdict == "timeout"
    assert run(pool, "return 7\n", "def check(c):\n    assert c() == 7\n") == ("passed", "")


@pytest.mark.skipif(probe_isolation() == "rlimits", reason="needs a pid namespace to list the sandbox's processes")
def test_setsid_double_fork_does_not_survive_the_sample(pool: SandboxPool) -> None:
    body = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(3600)
        os._exit(0)
    time.sleep(0.2)
    return 1
    """
    assert run(pool, body, "def check(c):\n    assert c() == 1\n") == ("passed", "")
    # the next sample on the same server sees only the namespace's init, the server and itself
    count = "import os\nreturn len([p for p in os.listdir('/proc') if p.isdigit()])\n"
    assert run(pool, count, "def check(c):\n    assert c() <= 3, c()\n") == ("passed", "")


def test_memory_is_capped(pool: SandboxPool) -> None:
    verdict, _ = run(pool, "x = bytearray(8 * 1024 ** 3)\nreturn 1\n", "def check(c):\n    c()\n")
    assert verdict == "memory"


def test_file_size_is_capped(pool: SandboxPool) -> None:
    body = """
    import signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with open("big", "wb") as f:
            f.write(b"x" * (32 * 1024 * 1024))
    except OSError:
        return "refused"
    return "wrote"
    """
    assert run(pool, body, "def check(c):\n    assert c() == 'refused'\n") == ("passed", "")


def test_exit_zero_and_killing_the_group_do_not_pass(pool: SandboxPool) -> None:
    for body in ("import os\nos._exit(0)\n", "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
                 "import os, signal\nos.kill(-1, signal.SIGKILL)\n"):
        verdict, detail = run(pool, body, "def check(c):\n    assert c() == 1\n")
        assert verdict in ("crashed", "failed"), (body, verdict, detail)  # never passed, never the harness's fault
    assert run(pool, "return 1\n", "def check(c):\n    assert c() == 1\n") == ("passed", "")


IMPORTS = ["pprint", "statistics", "random", "threading", "xml.dom.minidom", "glob"]


@pytest.mark.parametrize("level", ["bubblewrap", "namespaces"])
def test_samples_import_modules_the_server_did_not_preimport(level: str) -> None:
    """As root the sample runs under another uid: a /root of mode 0700 above
    the interpreter once shut it out of every module not pre-imported."""
    if LEVELS.index(level) < LEVELS.index(probe_isolation()) or not _works(level):
        pytest.skip(f"{level} is not available here")
    body = "import importlib\nreturn [importlib.import_module(m).__name__ for m in " + repr(IMPORTS) + "]\n"
    with SandboxPool(workers=1, level=level) as p:
        [outcome] = p.run([job(body, f"def check(c):\n    assert c() == {IMPORTS!r}\n")], rerun_timeouts=False)
    assert (outcome.verdict, outcome.detail) == ("passed", "")


def test_rlimits_level_says_when_samples_cannot_import() -> None:
    why = samples_cannot_import("rlimits")
    if is_root() and closed_ancestors():
        assert "closed to other users" in why and "bubblewrap" in why
    else:
        assert why == ""
    assert samples_cannot_import("bubblewrap") == samples_cannot_import("namespaces") == ""


def test_server_preimports_no_fork_hook_module() -> None:
    """threading/random register fork hooks that run in every sample's child
    (0.6-0.9 ms a fork here): the server must not pull them in."""
    code = ("import importlib, sys\nsys.path.insert(0, sys.argv[1])\nimport server\n"
            "[importlib.import_module(m) for m in server.PREIMPORT]\n"
            "print(sorted(m for m in server.FORK_HOOK_MODULES if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(REPO / "pytest_codeeval" / "sandbox")],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
