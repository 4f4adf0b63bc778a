"""The fork-server that runs inside the sandbox, and the wire format it speaks.

This file is executed *inside* the sandbox as a standalone script (its text is
passed to ``python -I -S -c``): the package itself is not visible in there, so
it imports nothing but the standard library.  The judge imports the same file
for the framing and the plain-data codec, so both ends share one definition.

Processes:
  server  -- started once per worker, pre-imports the standard library, then
             forks one child per sample. Talks to the judge on ``ctrl``.
  child   -- runs one sample: loads the program, then answers the judge's
             calls on its own socket (received from the judge through the
             server with SCM_RIGHTS), returning plain data only.

Latency, not CPU, is what a sample costs (a few ms of CPU, but every hop
between processes waits for the scheduler on a busy machine), so:
  * the child for the *next* sample is forked and set up (uid, limits,
    private folder) as soon as the previous sample is killed, and then waits
    for its job on its socket: the judge sends the job straight to it;
  * a job may carry the calls the judge expects to make ("batch", learned
    from an earlier run of the same test): the child runs them in order
    right after loading and streams each reply; the judge checks every call
    against the batch and never uses a reply for a call it did not make;
  * "end" may ask for no exit status: the server then replies as soon as
    the sample is killed and reaps it afterwards.
"""

from __future__ import annotations

import collections
import json
import math
import os
import resource
import socket
import struct
import sys
import time
from typing import Any

MAX_MESSAGE = 64 * 1024 * 1024  # a reply larger than this is a protocol error
_HEADER = struct.Struct("!I")
_MAX_DEPTH = 200


class WireError(Exception):
    """A peer sent something that is not a well-formed message."""


class NonPlain(TypeError):
    """A value is not built from plain builtin types only."""


# --- framing --------------------------------------------------------------


def frame(obj: Any) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    return _HEADER.pack(len(data)) + data


def send_msg(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    frame_ = frame(obj)
    if fds:
        socket.send_fds(sock, [frame_[:_HEADER.size]], fds)
        sock.sendall(frame_[_HEADER.size:])
    else:
        sock.sendall(frame_)


def _recv_exact(sock: socket.socket, n: int, fds_out: list[int] | None = None) -> bytes:
    chunks = []
    while n:
        if fds_out is not None and not chunks:
            chunk, fds, _flags, _addr = socket.recv_fds(sock, min(n, 1 << 20), 4)
            fds_out.extend(fds)
        else:
            chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_msg(sock: socket.socket, fds_out: list[int] | None = None) -> Any:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, fds_out))
    if size > MAX_MESSAGE:
        raise WireError(f"message of {size} bytes is over the {MAX_MESSAGE} byte limit")
    try:
        return json.loads(_recv_exact(sock, size))
    except ValueError as e:
        raise WireError(f"malformed message: {e}") from None


# --- plain-data codec -----------------------------------------------------
# Containers are tagged lists so that tuple/list/set/dict/bytes survive the
# trip; scalars are JSON scalars.  Only *exact* builtin types are accepted:
# an int subclass with a custom __eq__ is exactly what must never cross.


_STDLIB_DICTS = (collections.Counter, collections.defaultdict)


def encode_plain(x: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise NonPlain("nested too deeply")
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x if abs(x) < 1 << 53 else ["I", format(x, "x")]
    if t is float:
        return x if math.isfinite(x) else ["F", repr(x)]
    if t is list or t is tuple or t is set or t is frozenset:
        tag = {list: "l", tuple: "t", set: "s", frozenset: "z"}[t]
        return [tag, *(encode_plain(v, depth + 1) for v in x)]
    # Counter and defaultdict compare like the dict they hold (MBPP 40, 88
    # return a Counter); OrderedDict is left out: its equality depends on order.
    if t is dict or t in _STDLIB_DICTS:
        return ["d", *([encode_plain(k, depth + 1), encode_plain(v, depth + 1)] for k, v in x.items())]
    if t is bytes or t is bytearray:
        return ["b" if t is bytes else "B", x.hex()]
    if t is complex:
        return ["c", encode_plain(x.real), encode_plain(x.imag)]
    raise NonPlain(t.__name__)


def decode_plain(x: Any, depth: int = 0) -> Any:
    """Rebuild a value from ``encode_plain`` output; raises WireError on anything else.

    Runs in the trusted judge on untrusted input, so it builds only builtin
    types and checks every shape.
    """
    if depth > _MAX_DEPTH:
        raise WireError("nested too deeply")
    t = type(x)
    if x is None or t is bool or t is str or t is int or t is float:
        return x
    if t is not list or not x or type(x[0]) is not str:
        raise WireError(f"bad value {str(x)[:80]}")
    tag, rest = x[0], x[1:]
    try:
        if tag == "l":
            return [decode_plain(v, depth + 1) for v in rest]
        if tag == "t":
            return tuple(decode_plain(v, depth + 1) for v in rest)
        if tag == "s":
            return {decode_plain(v, depth + 1) for v in rest}
        if tag == "z":
            return frozenset(decode_plain(v, depth + 1) for v in rest)
        if tag == "d":
            out = {}
            for pair in rest:
                if type(pair) is not list or len(pair) != 2:
                    raise WireError("bad dict entry")
                out[decode_plain(pair[0], depth + 1)] = decode_plain(pair[1], depth + 1)
            return out
        if tag in ("b", "B") and len(rest) == 1 and type(rest[0]) is str:
            data = bytes.fromhex(rest[0])
            return data if tag == "b" else bytearray(data)
        if tag == "I" and len(rest) == 1 and type(rest[0]) is str:
            return int(rest[0], 16)
        if tag == "F" and len(rest) == 1 and rest[0] in ("inf", "-inf", "nan"):
            return float(rest[0])
        if tag == "c" and len(rest) == 2 and all(type(v) in (int, float) or type(v) is list for v in rest):
            return complex(decode_plain(rest[0], depth + 1), decode_plain(rest[1], depth + 1))
    except TypeError as e:  # unhashable set member or dict key
        raise WireError(str(e)) from None
    raise WireError(f"bad tag {tag!r}")


def plain_copy(x: Any) -> Any:
    """A fresh copy built only from builtin types (raises NonPlain)."""
    return decode_plain(encode_plain(x))


# --- the child: one sample ------------------------------------------------

def _exc_info(e: BaseException) -> dict[str, Any]:
    try:
        text = str(e)[:500]
    except BaseException:  # a hostile __str__
        text = "<unprintable>"
    return {"type": type(e).__name__ if isinstance(type(e).__name__, str) else "?", "msg": text,
            "builtin": type(e).__module__ == "builtins", "memory": isinstance(e, MemoryError)}


def _child_main(conn: socket.socket, job: dict[str, Any]) -> None:
    """Run one sample; never returns (the server kills or reaps it)."""
    g: dict[str, Any] = {"__name__": "__candidate__", "__builtins__": __builtins__}
    try:
        if job.get("setup"):
            exec(compile(job["setup"], "<test_setup>", "exec"), g)
        exec(compile(job["program"], "<candidate>", "exec"), g)
    except BaseException as e:  # SystemExit too: exiting early is a failure, not a pass
        send_msg(conn, {"load_error": _exc_info(e)})
        os._exit(0)
    if job["mode"] == "sandbox":
        _run_tests_inside(conn, job, g)
    out = [frame({"loaded": True})]
    fn = g.get(job["entry_point"])
    if not callable(fn):
        out.append(frame({"load_error": {"type": "NameError", "msg": f"the program defines no function {job['entry_point']!r}",
                                         "builtin": True, "memory": False}}))
        conn.sendall(b"".join(out))
        os._exit(0)
    # The calls the judge expects, in its order; it stops reading (and ends
    # the sample) at the first call that differs or fails.  Replies go out
    # together (one wake-up of the judge, not one per call), at the latest
    # _FLUSH_S after the oldest one waiting: a run that then hangs or dies
    # may lose the last few, which is why the judge re-runs such a sample
    # without predictions.
    since = time.monotonic()
    for call in job.get("batch") or ():
        if time.monotonic() - since >= _FLUSH_S:
            conn.sendall(b"".join(out))
            out.clear()
            since = time.monotonic()
        out.append(frame(_answer(fn, call)))
    conn.sendall(b"".join(out))
    del out
    while True:
        try:
            call = recv_msg(conn)
        except (EOFError, OSError, WireError):
            os._exit(0)
        send_msg(conn, _answer(fn, call))


def _answer(fn: Any, call: dict[str, Any]) -> dict[str, Any]:
    """One call of the candidate; the reply holds plain data only."""
    _restore_stdio()
    try:
        args = decode_plain(call["args"])
        kwargs = decode_plain(call["kwargs"])
        result = fn(*args, **kwargs)
    except BaseException as e:
        return {"exc": _exc_info(e)}
    try:
        return {"ok": encode_plain(result)}
    except NonPlain as e:
        return {"nonplain": str(e)[:100]}
    except BaseException as e:
        return {"exc": _exc_info(e)}


_FLUSH_S = 0.005
_SPARE_OUT = 250  # copies of the capture pipe and /dev/null, for _restore_stdio
_SPARE_IN = 251


def _restore_stdio() -> None:
    """A sample may close its stdout/stderr/stdin; the next call gets them back."""
    for fd, spare in ((0, _SPARE_IN), (1, _SPARE_OUT), (2, _SPARE_OUT)):
        try:
            os.fstat(fd)
        except OSError:
            try:
                os.dup2(spare, fd)
            except OSError:
                pass


def _run_tests_inside(conn: socket.socket, job: dict[str, Any], g: dict[str, Any]) -> None:
    """Fallback mode: the dataset's tests run here, next to the sample.

    The verdict message carries the judge's nonce; the sample's own code runs
    before the nonce is read from the job, and every value the candidate
    returns is replaced by a plain copy before the test sees it.
    """
    entry = g.get(job["entry_point"])

    def guarded(*args: Any, **kwargs: Any) -> Any:
        return plain_copy(entry(*args, **kwargs))

    try:
        exec(compile(job["test"], "<test>", "exec"), g)
        check = g["check"]  # before binding: a solution may itself be named check
        g[job["entry_point"]] = guarded
        check(guarded)
    except AssertionError as e:
        tb = e.__traceback__
        line = 0
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<test>":
                line = tb.tb_lineno
            tb = tb.tb_next
        send_msg(conn, {"nonce": job.pop("nonce"), "failed": {"line": line, "msg": str(e)[:500]}})
    except NonPlain as e:
        send_msg(conn, {"nonce": job.pop("nonce"), "nonplain": str(e)[:100]})
    except BaseException as e:
        send_msg(conn, {"nonce": job.pop("nonce"), "exc": _exc_info(e)})
    else:
        send_msg(conn, {"nonce": job.pop("nonce"), "passed": True})
    os._exit(0)


# --- the server -----------------------------------------------------------


def _kill_everything_else(in_pid_namespace: bool, pgid: int) -> None:
    """Kill the sample and anything it started, even past setsid/double fork."""
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    if in_pid_namespace:
        # kill(-1) signals every process we may signal in this pid namespace
        # except ourselves and its init; forks are blocked while it runs.
        for _ in range(3):
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                break


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _spawn(sock_fd: int, ctrl: socket.socket, conf: dict[str, Any]) -> tuple[int, int, str]:
    """Fork the child for the next sample: set up, then it waits for its job.

    Returns (pid, read end of its output pipe, its private folder).  Everything
    here happens before any sample code runs, so the set-up is trusted.
    """
    # Whatever can be done here is done here, not in the child: every
    # Python step after the fork writes to pages shared with the server,
    # and each first write costs a copy-on-write fault (a few us each here).
    sample_uid = conf.get("sample_uid")
    workdir = _new_workdir()
    if sample_uid is not None:
        os.chown(workdir, sample_uid, sample_uid)
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            ctrl.close()
            os.close(out_r)
            os.setpgid(0, 0)
            os.dup2(out_w, 1)  # fd 0 is already /dev/null (main())
            os.dup2(out_w, 2)
            if sample_uid is not None:
                os.setgroups([])
                os.setgid(sample_uid)
                os.setuid(sample_uid)  # drops every capability: RLIMIT_NPROC now binds
            os.dup2(out_w, _SPARE_OUT)
            os.dup2(0, _SPARE_IN)
            os.chdir(workdir)
            for res, value in conf["_rlimits"]:
                resource.setrlimit(res, (value, value))
            conn = socket.socket(fileno=sock_fd)
            # sys.stdin/stdout/stderr are the server's own objects on fds 0-2,
            # which now are /dev/null and the capture pipe; the server never
            # writes to them, so their buffers are empty.  (Opening three new
            # ones cost 0.4-0.6 ms per sample.)
        except BaseException as e:  # the sandbox could not set up: report, never run the sample
            try:
                os.write(out_w, f"sandbox setup failed: {e!r}".encode())
            finally:
                os._exit(70)
        try:
            job = recv_msg(conn)  # from the judge, straight to us
        except BaseException:
            os._exit(0)  # the judge went away before giving us a sample
        _child_main(conn, job)
        os._exit(0)
    os.close(out_w)
    os.close(sock_fd)
    return pid, out_r, workdir


def _watch(out_r: int, ctrl: socket.socket, pid: int, out_cap: int) -> tuple[int, int, bool, bytes]:
    """Count (and cap) the sample's output until the judge speaks on ``ctrl``."""
    import select

    head = bytearray()
    total = 0
    limited = False
    while True:
        ready, _, _ = select.select([out_r, ctrl] if out_r != -1 else [ctrl], [], [])
        if out_r in ready:
            try:
                chunk = os.read(out_r, 65536)
            except OSError:
                chunk = b""
            if chunk:
                total += len(chunk)
                if len(head) < 2048:
                    head += chunk[: 2048 - len(head)]
                if total > out_cap and not limited:
                    limited = True
                    _kill_everything_else(False, pid)
            else:
                os.close(out_r)
                out_r = -1
        if ctrl in ready:
            return out_r, total, limited, bytes(head)


def _wait_status(pid: int) -> dict[str, Any]:
    try:
        _, raw = os.waitpid(pid, 0)
        return {"exit": os.waitstatus_to_exitcode(raw)}
    except ChildProcessError:  # already reaped (never expected)
        return {"exit": None}


def _serve(ctrl: socket.socket, conf: dict[str, Any]) -> None:
    """prepare(fd) forks a waiting child; end[(fd)] kills it, replies, and
    (given the next sample's socket) forks the next one straight away."""
    out_cap = int(conf["output_cap"])
    next_fd: int | None = None
    while True:
        if next_fd is None:
            fds: list[int] = []
            try:
                msg = recv_msg(ctrl, fds)
            except EOFError:
                return
            if msg.get("op") != "prepare" or len(fds) != 1:
                raise WireError("expected a prepare message with one sample socket")
            next_fd = fds[0]
        pid, out_r, workdir = _spawn(next_fd, ctrl, conf)
        next_fd = None
        out_r, total, limited, head = _watch(out_r, ctrl, pid, out_cap)
        fds = []
        try:
            end = recv_msg(ctrl, fds)
        except EOFError:
            _kill_everything_else(conf["pid_namespace"], pid)
            return
        if end.get("op") != "end" or len(fds) > 1:
            raise WireError("expected an end message")
        _kill_everything_else(conf["pid_namespace"], pid)
        reply = {"output_bytes": total, "output_limited": limited, "output_head": head.decode("utf-8", "replace")}
        if end.get("status", True):
            reply["status"] = _wait_status(pid)
            send_msg(ctrl, reply)
        else:
            # The judge has its verdict: answer now, reap after (the sample
            # is SIGKILLed already and can run no more code of its own).
            reply["status"] = {"exit": None}
            send_msg(ctrl, reply)
            _wait_status(pid)
        _reap()
        if out_r != -1:
            os.close(out_r)
        _remove_workdir(workdir)
        if fds:
            next_fd = fds[0]


_workdirs = 0


def _new_workdir() -> str:
    """A fresh private folder for one sample (mode 0700; tempfile costs a fork hook, see PREIMPORT)."""
    global _workdirs
    while True:
        _workdirs += 1
        path = f"/tmp/sample-{os.getpid()}-{_workdirs}"
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:  # left by an earlier server with our pid (rlimits level shares /tmp)
            continue


def _remove_workdir(workdir: str) -> None:
    """Remove the sample's folder (and what it wrote there): the next sample starts clean."""
    try:
        os.rmdir(workdir)  # the usual case: the sample wrote nothing
    except OSError:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


_MS_BIND, _MS_REC = 4096, 16384


def _open_up(closed: dict[str, list[str]]) -> None:
    """namespaces level, as root: a folder other users cannot enter (/root)
    becomes an empty 0755 tmpfs with only the interpreter's folders bound back
    in, so the sample's uid can import the whole standard library.  Our own
    mount namespace: the real folder is untouched."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for top, inner in closed.items():
        fds = [(d, os.open(d, os.O_PATH | os.O_DIRECTORY)) for d in inner]  # before the tmpfs covers them
        if libc.mount(b"none", top.encode(), b"tmpfs", 0, b"size=1m,mode=0755") != 0:
            raise OSError(ctypes.get_errno(), f"cannot open up {top}")
        for d, fd in fds:
            os.makedirs(d, mode=0o755, exist_ok=True)
            if libc.mount(f"/proc/self/fd/{fd}".encode(), d.encode(), None, _MS_BIND | _MS_REC, None) != 0:
                raise OSError(ctypes.get_errno(), f"cannot bind {d} back")
            os.close(fd)


def _hide_paths(paths: list[str]) -> None:
    """namespaces level: cover harness paths with empty tmpfs (we own this mount ns)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for p in paths:
        opts = b"size=64m,mode=1777" if p == "/tmp" else b"size=1m,mode=0755"
        if os.path.isdir(p):
            if libc.mount(b"none", p.encode(), b"tmpfs", 0, opts) != 0:
                raise OSError(ctypes.get_errno(), f"cannot hide {p}")


# Pre-imported once per server, so a sample's imports of these cost nothing.
# Left out on purpose, measured on the 1,640-sample benchmark machine:
# threading (and queue, random, tempfile, uuid, statistics, which import it
# or register their own fork hooks) run Python code in every forked child
# (os.register_at_fork) and made each fork+exit 0.6-0.9 ms slower, about a
# tenth of a sample's whole cost; the few samples that import them pay it once.
PREIMPORT = (
    "abc array ast base64 binascii bisect builtins calendar cmath collections collections.abc "
    "contextlib copy csv dataclasses datetime decimal difflib enum fractions functools gc hashlib heapq "
    "io itertools json keyword math numbers operator re resource select socket string "
    "struct sys textwrap time types typing unicodedata shutil signal"
).split()
# Imported by none of the above: a fork hook in every child (see PREIMPORT).
FORK_HOOK_MODULES = ("threading", "random")


def main() -> None:
    for name in list(os.environ):  # the harness's SERVER_ENV: samples get an empty environment
        del os.environ[name]  # (unsetenv: forked children inherit the C environment)
    conf = json.loads(sys.argv[1])
    if conf.get("open_up"):
        os.umask(0o022)
        _open_up(conf["open_up"])
    if conf.get("hide"):
        _hide_paths(conf["hide"])
    for path in conf.get("sys_path", []):
        if path not in sys.path:
            sys.path.append(path)
    import importlib

    for name in PREIMPORT:  # paid once per worker, shared by every fork
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if conf.get("subreaper"):
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans stay ours
    conf["_rlimits"] = [(getattr(resource, name), int(value)) for name, value in conf["rlimits"].items()]
    devnull = os.open(os.devnull, os.O_RDONLY)  # every sample's stdin
    os.dup2(devnull, 0)
    os.close(devnull)
    # Forked children share the server's pages copy-on-write; a garbage
    # collection in a child would walk (and so copy) every object the
    # server imported.  Frozen objects are never walked.
    import gc

    gc.collect()
    gc.freeze()
    ctrl = socket.socket(fileno=int(conf["ctrl_fd"]))
    send_msg(ctrl, {"ready": True, "uid": os.getuid(), "pid": os.getpid()})
    _serve(ctrl, conf)


if __name__ == "__main__":
    main()
