"""The fork-server that runs inside the sandbox, and the wire format it speaks.

This file is executed *inside* the sandbox as a standalone script (its text is
passed to ``python -I -S -c``): the package itself is not visible in there, so
it imports nothing but the standard library.  The judge imports the same file
for the framing and the value codec, so both ends share one definition.

Processes:
  server  -- started once per worker, pre-imports the standard library, sets
             up the worker's private scratch folders, IPC limits and syscall
             filter, then forks one child per sample. Talks to the judge on
             ``ctrl``; only the server's word there is trusted.
  child   -- runs one sample: loads the program, then answers the judge's
             requests on its own socket (received from the judge through the
             server with SCM_RIGHTS).  It decides nothing: the dataset's
             tests run in the judge, which asks the child to call the
             candidate, read an attribute of an object the program made, call
             back a function the test passed, and so on (see remote.py).

Per sample, the child starts from a clean world: a fresh tmpfs on /tmp and
/dev/shm (remounted whenever the previous sample changed it: the kernel frees
whatever it left, however deep), no SysV IPC object (all removed after each
sample; the worker has its IPC namespace of its own), the same pid numbers
(the pid namespace's counter is reset), no kernel keyring, no new user
namespace, no IP socket and no POSIX message queue (a seccomp filter).

Latency, not CPU, is what a sample costs, so the child for the *next* sample
is forked and set up as soon as the previous one is cleaned up, and then waits
for its job on its socket: the judge sends the job straight to it, together
with the test's first request when the test needs nothing from the program to
start (one round trip less).
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
from typing import Any, Callable

# --- limits the judge enforces on what a sample sends ---------------------

MAX_MESSAGE = 16 * 1024 * 1024  # bytes in one message
# Commas and brackets in one message: every JSON value but the first of a
# container follows a comma, so this bounds the objects json.loads builds
# (a 16 MiB message of "[]," would otherwise be 5.6 million lists).
MAX_ITEMS = 1_000_000
MAX_DEPTH = 100  # containers inside containers
# Sum over a message's sets and dicts of (items sharing one hash)^2: what
# building them costs.  150,000 ints that all hash to 0 would cost 10^10.
MAX_COLLISION_WORK = 1 << 20
KEEP_OUTPUT = 2048  # bytes of a sample's output kept for its log (the rest is counted, then dropped)

_HEADER = struct.Struct("!I")
_JS_INT = 1 << 53


class WireError(Exception):
    """A peer sent something that is not a well-formed message."""


class NonPlain(TypeError):
    """A value is not built from plain builtin types only (and cannot become a handle)."""


# --- framing --------------------------------------------------------------


# One of each, not one per message (json.dumps with separators builds an
# encoder every call).  ensure_ascii: a lone surrogate in a string travels as
# an escape instead of failing to encode.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode


def frame(obj: Any) -> bytes:
    data = _ENCODE(obj).encode()
    return _HEADER.pack(len(data)) + data


def send_msg(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    frame_ = frame(obj)
    if fds:
        socket.send_fds(sock, [frame_[:_HEADER.size]], fds)
        sock.sendall(frame_[_HEADER.size:])
    else:
        sock.sendall(frame_)


def _recv_exact(sock: socket.socket, n: int, fds_out: list[int] | None = None) -> bytes:
    """Blocking read of ``n`` bytes from a trusted peer (the server's control socket)."""
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
    """One message from a trusted peer, blocking (the judge reads samples through remote.Channel)."""
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, fds_out))
    if size > MAX_MESSAGE:
        raise WireError(f"message of {size} bytes is over the {MAX_MESSAGE} byte limit")
    return parse(_recv_exact(sock, size))


def parse(data: bytes, limited: bool = False) -> Any:
    """JSON text to Python; ``limited`` (untrusted input) counts the objects first."""
    if limited:
        items = data.count(b",") + data.count(b"[") + data.count(b"{")
        if items > MAX_ITEMS:
            raise WireError(f"message of {items} items is over the {MAX_ITEMS} item limit")
    try:
        return _DECODE(data.decode())
    except UnicodeDecodeError:
        raise WireError("malformed message: not UTF-8") from None
    except RecursionError:
        raise WireError("nested too deeply") from None
    except ValueError as e:
        raise WireError(f"malformed message: {str(e)[:100]}") from None


class Reader:
    """Buffered blocking reads of whole messages (the child's side: one recv per message, mostly)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def recv(self) -> Any:
        while True:
            if len(self.buf) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self.buf)
                end = _HEADER.size + size
                if len(self.buf) >= end:
                    data = bytes(self.buf[_HEADER.size:end])
                    del self.buf[:end]
                    return parse(data)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("peer closed the connection")
            self.buf += chunk


# --- values on the wire ---------------------------------------------------
# Scalars are JSON scalars; containers are tagged lists so that
# tuple/list/set/dict/bytes survive the trip.  Only *exact* builtin types are
# plain: an int subclass with a custom __eq__ is exactly what must never reach
# a comparison as a value.  Anything else becomes a handle:
#   ["H", id, type name] -- an object that lives in the sample (the judge gets
#                           a proxy whose operations go back to the sample);
#   ["C", id]            -- a callable of the test's that lives in the judge
#                           (the sample gets a proxy that asks the judge to
#                           call it).
# A set, frozenset or dict key holding a handle would need the handle's hash:
# the sample sends such a container as one handle instead.

# Counter and defaultdict compare like the dict they hold (MBPP 40, 88 return a Counter)
_DICTS: tuple[type, ...] = (dict, collections.Counter, collections.defaultdict)
_SEQUENCES = {list: "l", tuple: "t"}
_SETS = {set: "s", frozenset: "z"}


class Encoder:
    """Python value -> wire value.  ``export`` turns what is not plain into a
    handle (None: raise NonPlain); ``sets_as_handles`` (the sample's side) sends
    a set or dict with a handle among its keys as one handle."""

    def __init__(self, export: Callable[[Any], list] | None = None, sets_as_handles: bool = False) -> None:
        self.export = export
        self.sets_as_handles = sets_as_handles
        self.exported = 0

    def _handle(self, x: Any) -> list:
        if self.export is None:
            raise NonPlain(type(x).__name__)
        self.exported += 1
        return self.export(x)

    def encode(self, x: Any, depth: int = 0) -> Any:
        t = type(x)
        if x is None or t is bool or t is str:
            return x
        if t is int:
            return x if -_JS_INT < x < _JS_INT else ["I", format(x, "x")]
        if t is float:
            return x if math.isfinite(x) else ["F", repr(x)]
        if depth >= MAX_DEPTH:
            return self._handle(x)
        tag = _SEQUENCES.get(t)
        if tag is not None:
            out = [tag]
            for v in x:  # the usual arguments and results: flat lists of small scalars
                tv = type(v)
                if tv is str or tv is bool or v is None or tv is int and -_JS_INT < v < _JS_INT:
                    out.append(v)
                else:
                    out.append(self.encode(v, depth + 1))
            return out
        if t in _SETS or t in _DICTS:
            before = self.exported
            if t in _SETS:
                out: list = [_SETS[t], *[self.encode(v, depth + 1) for v in x]]
                keyed = self.exported != before
            else:
                out = ["d"]
                keyed = False
                for k, v in x.items():
                    n = self.exported
                    key = self.encode(k, depth + 1)
                    keyed = keyed or self.exported != n
                    out.append([key, self.encode(v, depth + 1)])
            if keyed:  # a handle among the keys: the judge could not hash it
                if not self.sets_as_handles:
                    raise NonPlain(f"{t.__name__} holding a {type(x).__name__} key")
                return self._handle(x)
            return out
        if t is bytes or t is bytearray:
            return ["b" if t is bytes else "B", x.hex()]
        if t is complex:
            return ["c", self.encode(x.real), self.encode(x.imag)]
        base = _plain_base(t)
        if base is not None:
            try:
                value = base(x)
            except Exception:
                return self._handle(x)
            return self.encode(value, depth + 1)
        scalar = _numpy_scalar(x)
        if scalar is not _NOT_SCALAR:
            return self.encode(scalar, depth + 1)
        return self._handle(x)


_BASES = (tuple, list, dict, set, frozenset, int, float, str, bytes)


def _plain_base(t: type) -> type | None:
    """The builtin a subclass (a namedtuple, an IntEnum) stands for, when it
    compares and hashes as that builtin: it then crosses as the builtin's
    value.  Safe whoever encodes: the judge compares the plain value itself
    (a sample could send any plain value anyway); one that changes __eq__
    (an OrderedDict, an always-equal list) stays an object."""
    for base in _BASES:
        if issubclass(t, base):
            if all(getattr(t, m, None) is getattr(base, m, None) for m in ("__eq__", "__ne__", "__hash__")):
                return base
            return None
    return None


_NOT_SCALAR = object()


def _numpy_scalar(x: Any) -> Any:
    """A numpy scalar (np.int64(5), np.float64(0.5), np.bool_(True)) as the
    Python scalar it stands for; a solution that computes with numpy returns
    these where the test expects a number."""
    t = type(x)
    if getattr(t, "__module__", None) != "numpy" or getattr(x, "ndim", None) != 0 or t.__name__ == "ndarray":
        return _NOT_SCALAR
    try:
        v = x.item()
    except Exception:
        return _NOT_SCALAR
    return v if type(v) in (bool, int, float, complex, str, bytes) else _NOT_SCALAR


class Decoder:
    """Wire value -> Python value, building only builtin types and checking every shape.

    ``resolve(tag, value)`` turns a handle into the local object (None: a
    handle is a WireError).  ``limited`` (the judge reading a sample) also
    bounds the cost of hashing set and dict keys.
    """

    def __init__(self, resolve: Callable[[str, list], Any] | None = None, limited: bool = False) -> None:
        self.resolve = resolve
        self.limited = limited
        self.collision_work = 0
        self._in_key = 0

    def decode(self, x: Any, depth: int = 0) -> Any:
        t = type(x)
        if x is None or t is bool or t is str or t is int or t is float:
            return x
        if t is not list or not x or type(x[0]) is not str:
            raise WireError(f"bad value {str(x)[:80]!r}")
        if depth >= MAX_DEPTH:
            raise WireError("nested too deeply")
        tag = x[0]
        if tag == "l":
            return [self.decode(x[i], depth + 1) for i in range(1, len(x))]
        if tag == "t":
            return tuple([self.decode(x[i], depth + 1) for i in range(1, len(x))])
        if tag == "s" or tag == "z":
            items = self._keys([x[i] for i in range(1, len(x))], depth)
            return set(items) if tag == "s" else frozenset(items)
        if tag == "d":
            pairs = [x[i] for i in range(1, len(x))]
            if any(type(p) is not list or len(p) != 2 for p in pairs):
                raise WireError("bad dict entry")
            keys = self._keys([p[0] for p in pairs], depth)
            return dict(zip(keys, [self.decode(p[1], depth + 1) for p in pairs]))
        if tag in ("b", "B") and len(x) == 2 and type(x[1]) is str:
            try:
                data = bytes.fromhex(x[1])
            except ValueError:
                raise WireError("bad bytes") from None
            return data if tag == "b" else bytearray(data)
        if tag == "I" and len(x) == 2 and type(x[1]) is str:
            try:
                return int(x[1], 16)
            except ValueError:
                raise WireError("bad int") from None
        if tag == "F" and len(x) == 2 and x[1] in ("inf", "-inf", "nan"):
            return float(x[1])
        if tag == "c" and len(x) == 3:
            re_, im = self.decode(x[1], depth + 1), self.decode(x[2], depth + 1)
            if type(re_) is not float and type(re_) is not int or type(im) is not float and type(im) is not int:
                raise WireError("bad complex")
            return complex(re_, im)
        if tag in ("H", "C") and self.resolve is not None:
            if self._in_key:
                raise WireError("an object handle inside a set or dict key")
            return self.resolve(tag, x)
        raise WireError(f"bad tag {tag!r}")

    def _keys(self, raw: list, depth: int) -> list:
        self._in_key += 1
        try:
            keys = [self.decode(v, depth + 1) for v in raw]
        finally:
            self._in_key -= 1
        try:
            hashes = [hash(k) for k in keys]
        except TypeError as e:  # a list inside a set
            raise WireError(str(e)) from None
        if self.limited and len(set(hashes)) != len(hashes):
            # equal hashes make building the set quadratic: bound the total
            counts: dict[int, int] = {}
            for h in hashes:
                counts[h] = counts.get(h, 0) + 1
            self.collision_work += sum(c * c for c in counts.values() if c > 1)
            if self.collision_work > MAX_COLLISION_WORK:
                raise WireError(f"a set or dict whose keys share hashes ({max(counts.values())} with one hash)")
        return keys


def exc_info(e: BaseException) -> dict[str, Any]:
    """An exception as plain data: its class name, whether that is a builtin, its message."""
    try:
        text = str(e)[:500]
    except BaseException:  # a hostile __str__
        text = "<unprintable>"
    name = type(e).__name__
    return {"type": name if isinstance(name, str) else "?", "msg": text if isinstance(text, str) else "?",
            "builtin": type(e).__module__ == "builtins", "memory": isinstance(e, MemoryError)}


# --- the child: one sample ------------------------------------------------

_SPARE_OUT = 250  # copies of the capture pipe and /dev/null, for _restore_stdio
_SPARE_IN = 251
_CONN_FD = 252  # the sample's socket to the judge
_OPS_WITH_KEY = {"getitem", "setitem", "delitem"}


def _restore_stdio() -> None:
    """A sample may close its stdout/stderr/stdin; the next request gets them back."""
    for fd, spare in ((0, _SPARE_IN), (1, _SPARE_OUT), (2, _SPARE_OUT)):
        try:
            os.fstat(fd)
        except OSError:
            try:
                os.dup2(spare, fd)
            except OSError:
                pass


class _Callback:
    """Stands, in the sample, for a callable the test passed: calling it asks the judge to call the real one."""

    __slots__ = ("_sample", "_id")

    def __init__(self, sample: "_Sample", cid: int) -> None:
        self._sample = sample
        self._id = cid

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        s = self._sample
        s.send({"cb": self._id, "a": s.enc.encode(list(args)), "k": s.enc.encode(kwargs)})
        reply = s.wait_reply()
        if "ok" in reply:
            return s.dec.decode(reply["ok"])
        info = reply.get("exc") if isinstance(reply.get("exc"), dict) else {}
        cls = _builtin_exception(str(info.get("type", "")))
        raise cls(str(info.get("msg", "")))

    def __repr__(self) -> str:
        return "<function passed by the test>"


def _builtin_exception(name: str) -> type:
    import builtins

    cls = getattr(builtins, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, Exception) else RuntimeError


class _Sample:
    """The child's side of the channel: the program's objects by handle, and the request loop."""

    def __init__(self, conn: socket.socket, reader: Reader, g: dict[str, Any], entry: str) -> None:
        self.conn = conn
        self.reader = reader
        self.g = g
        self.entry = entry
        self.objects: dict[int, Any] = {}
        self.ids: dict[int, int] = {}  # id(object) -> handle, so one object is one handle
        self.enc = Encoder(self._export, sets_as_handles=True)
        self.dec = Decoder(self._resolve)

    def _export(self, x: Any) -> list:
        hid = self.ids.get(id(x))
        if hid is None:
            hid = len(self.objects) + 1
            self.ids[id(x)] = hid
            self.objects[hid] = x  # held, so its id stays its own
        name = type(x).__name__
        return ["H", hid, name[:100] if isinstance(name, str) else "?"]

    def _resolve(self, tag: str, x: list) -> Any:
        if tag == "C" and len(x) == 2 and type(x[1]) is int:
            return _Callback(self, x[1])
        if tag == "H" and len(x) >= 2 and type(x[1]) is int:
            if x[1] == 0:
                return self.g.get(self.entry)
            if x[1] in self.objects:
                return self.objects[x[1]]
        raise WireError(f"unknown handle {str(x)[:40]}")

    def send(self, obj: Any) -> None:
        self.conn.sendall(frame(obj))

    def recv(self) -> Any:
        try:
            return self.reader.recv()
        except (EOFError, OSError, WireError):
            os._exit(0)  # the judge is done with us

    def wait_reply(self) -> dict[str, Any]:
        """The judge's answer to a callback; requests it makes meanwhile are served first."""
        while True:
            msg = self.recv()
            if isinstance(msg, dict) and "q" in msg:
                self.send(self.answer(msg))
            elif isinstance(msg, dict):
                return msg
            else:
                os._exit(0)

    def serve(self) -> None:
        while True:
            msg = self.recv()
            if not isinstance(msg, dict) or "q" not in msg:
                os._exit(0)
            self.send(self.answer(msg))

    def answer(self, msg: dict[str, Any]) -> dict[str, Any]:
        """One request of the judge's; the reply holds plain data and handles only."""
        _restore_stdio()
        try:
            result = self._do(msg)
        except BaseException as e:  # SystemExit, StopIteration, ...: the judge decides what they mean
            return {"exc": exc_info(e)}
        try:
            return {"ok": self.enc.encode(result)}
        except BaseException as e:
            return {"exc": exc_info(e)}

    def _do(self, msg: dict[str, Any]) -> Any:
        op = msg["q"]
        target = self._resolve("H", ["H", msg.get("t", 0)])
        if op == "call":
            args = self.dec.decode(msg["a"])
            kwargs = self.dec.decode(msg["k"])
            return target(*args, **kwargs)
        if op == "getattr":
            return getattr(target, msg["n"])
        if op == "setattr":
            return setattr(target, msg["n"], self.dec.decode(msg["v"]))
        if op == "delattr":
            return delattr(target, msg["n"])
        if op in _OPS_WITH_KEY:
            key = self.dec.decode(msg["k"])
            if op == "getitem":
                return target[key]
            if op == "setitem":
                target[key] = self.dec.decode(msg["v"])
                return None
            del target[key]
            return None
        unary = _UNARY.get(op)
        if unary is None:
            raise TypeError(f"unknown request {op!r}")
        return unary(target)


_UNARY: dict[str, Callable[[Any], Any]] = {
    "iter": iter, "next": next, "len": len, "str": str, "float": float, "int": int,
    "index": lambda x: x.__index__(), "complex": complex, "reversed": reversed, "abs": abs,
    "neg": lambda x: -x, "pos": lambda x: +x,
}


def _child_main(conn: socket.socket, reader: Reader, first: dict[str, Any]) -> None:
    """Run one sample; never returns (the server kills or reaps it)."""
    job = first.get("job") if isinstance(first, dict) else None
    if not isinstance(job, dict):
        os._exit(0)
    g: dict[str, Any] = {"__name__": "__candidate__", "__builtins__": __builtins__}
    try:
        if job.get("setup"):
            exec(compile(job["setup"], "<test_setup>", "exec"), g)
        exec(compile(job["program"], "<candidate>", "exec"), g)
    except BaseException as e:  # SystemExit too: exiting early is a failure, not a pass
        conn.sendall(frame({"load_error": exc_info(e)}))
        os._exit(0)
    entry = job["entry_point"]
    if not callable(g.get(entry)):
        conn.sendall(frame({"load_error": {"type": "NameError", "msg": f"the program defines no function {entry!r}",
                                           "builtin": True, "memory": False}}))
        os._exit(0)
    sample = _Sample(conn, reader, g, entry)
    names: dict[str, Any] = {}
    for name in job.get("want") or ():  # the program's names the test uses (MBPP 367's Node)
        if isinstance(name, str) and name in g:
            try:
                names[name] = sample.enc.encode(g[name])
            except BaseException:
                pass
    # at once, not with the first reply: the judge times the first call from here
    conn.sendall(frame({"loaded": True, "names": names}))
    if "q" in first:  # the test's first request came with the job
        sample.send(sample.answer(first))
    del job, first
    sample.serve()


# --- the syscall filter (seccomp) -----------------------------------------
# Refused to samples: the kernel keyring (keys outlive the sample: they stay
# with its uid), new namespaces (a user namespace gives a sample every
# capability inside it), IP sockets (no network, and no TCP state that
# outlives the sample), SysV IPC and POSIX message queues (their objects
# outlive the sample in the worker's IPC namespace, and so does the counter
# that numbers them: even with every object removed, the id of a new one
# tells how many an earlier sample made), and io_uring (it would open sockets
# past the filter).  SysV IPC and clone3 answer ENOSYS, as on a kernel built
# without them, so libraries fall back (the C library to clone, whose flags
# the filter can read).

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_SYSCALLS = {  # name: (x86_64, aarch64)
    "socket": (41, 198), "clone": (56, 220), "unshare": (272, 97), "setns": (308, 268),
    "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219), "mq_open": (240, 180),
    "clone3": (435, 435), "io_uring_setup": (425, 425), "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427), "seccomp": (317, 277),
    "shmget": (29, 194), "shmat": (30, 196), "shmctl": (31, 195), "shmdt": (67, 197),
    "msgget": (68, 186), "msgsnd": (69, 189), "msgrcv": (70, 188), "msgctl": (71, 187),
    "semget": (64, 190), "semop": (65, 193), "semctl": (66, 191), "semtimedop": (220, 192),
}
_EPERM, _ENOSYS = 1, 38
_REFUSED = {  # name: errno
    **{n: _EPERM for n in ("add_key", "request_key", "keyctl", "unshare", "setns", "mq_open", "io_uring_setup",
                           "io_uring_enter", "io_uring_register")},
    **{n: _ENOSYS for n in ("clone3", "shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl",
                            "semget", "semop", "semctl", "semtimedop")},
}
_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_AF_INET, _AF_INET6 = 2, 10


def seccomp_program(machine: str) -> bytes | None:
    """The filter as BPF instructions (struct sock_filter[]), or None on an unknown architecture."""
    if machine not in _AUDIT_ARCH:
        return None
    arch = 0 if machine == "x86_64" else 1
    nr = {name: nums[arch] for name, nums in _SYSCALLS.items()}
    LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
    ALLOW, ERRNO = 0x7FFF0000, 0x00050000
    prog: list[tuple[int, int, int, int]] = []

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> None:
        prog.append((code, jt, jf, k))

    deny = ERRNO | _EPERM
    op(LD_W_ABS, 4)  # seccomp_data.arch
    op(JEQ_K, _AUDIT_ARCH[machine], 1, 0)
    op(RET_K, deny)  # another ABI (32-bit calls): nothing of it
    op(LD_W_ABS, 0)  # seccomp_data.nr
    if machine == "x86_64":
        op(JGE_K, 0x40000000, 0, 1)  # x32 calls
        op(RET_K, deny)
    for name, errno_ in _REFUSED.items():
        op(JEQ_K, nr[name], 0, 1)
        op(RET_K, ERRNO | errno_)
    op(JEQ_K, nr["clone"], 0, 4)  # clone: look at its flags, else on to socket
    op(LD_W_ABS, 16)  # low half of args[0]: the flags
    op(JSET_K, _NAMESPACE_FLAGS, 0, 1)
    op(RET_K, deny)
    op(RET_K, ALLOW)
    op(JEQ_K, nr["socket"], 0, 5)  # socket: look at its family, else allow
    op(LD_W_ABS, 16)  # low half of args[0]: the address family
    op(JEQ_K, _AF_INET, 2, 0)
    op(JEQ_K, _AF_INET6, 1, 0)
    op(RET_K, ALLOW)
    op(RET_K, deny)
    op(RET_K, ALLOW)
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


class _Seccomp:
    """Installs the filter in a child (built once in the server: the child only makes one call)."""

    def __init__(self) -> None:
        import ctypes

        code = seccomp_program(os.uname().machine)
        if code is None:
            raise OSError("no seccomp filter for this architecture")

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        self._buf = ctypes.create_string_buffer(code, len(code))
        self._prog = SockFprog(len(code) // 8, ctypes.cast(self._buf, ctypes.c_void_p))
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._nr = _SYSCALLS["seccomp"][0 if os.uname().machine == "x86_64" else 1]
        self._ref = ctypes.byref(self._prog)
        self._ctypes = ctypes

    def install(self) -> None:
        libc, long = self._libc, self._ctypes.c_long
        if libc.prctl(38, long(1), long(0), long(0), long(0)) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(self._ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
        # SECCOMP_SET_MODE_FILTER with SECCOMP_FILTER_FLAG_SPEC_ALLOW: no
        # speculative-store-bypass mitigation forced on the sample (it slows
        # every program down and guards nothing here)
        if libc.syscall(long(self._nr), long(1), long(4), self._ref) != 0:
            if libc.syscall(long(self._nr), long(1), long(0), self._ref) != 0:
                raise OSError(self._ctypes.get_errno(), "seccomp")

    def works(self) -> bool:
        """Install it in a throwaway child and check that keyctl is refused and getpid is not."""
        pid = os.fork()
        if pid == 0:
            try:
                self.install()
                libc = self._libc
                nr_keyctl = _SYSCALLS["keyctl"][0 if os.uname().machine == "x86_64" else 1]
                long = self._ctypes.c_long
                ok = libc.syscall(long(nr_keyctl), long(0), long(-4), long(0)) == -1 and self._ctypes.get_errno() == _EPERM
                nr_shmget = _SYSCALLS["shmget"][0 if os.uname().machine == "x86_64" else 1]
                ok = ok and libc.syscall(long(nr_shmget), long(0), long(4096), long(0)) == -1 \
                    and self._ctypes.get_errno() == _ENOSYS
                try:
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
                    ok = False
                except PermissionError:
                    pass
                os._exit(0 if ok and os.getpid() > 0 else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        return status == 0


# --- per-worker scratch folders -------------------------------------------

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_NOATIME, _MS_BIND, _MS_REC = 1, 2, 4, 32, 1024, 4096, 16384
_MNT_DETACH = 2


class _Scratch:
    """A tmpfs on ``path`` that is mounted afresh whenever a sample changed it.

    The kernel then frees whatever the sample left there (a 3,000-deep tree
    costs the server nothing).  Folders of the interpreter that live under
    ``path`` (a venv under /tmp) are bound back into every fresh mount,
    read-only.
    """

    def __init__(self, libc: Any, path: str, size: int, inodes: int, keep: list[str]) -> None:
        self.libc = libc
        self.path = path
        self.opts = f"size={size},nr_inodes={inodes},mode=1777".encode()
        # opened before the first mount covers them
        self.keep = [(d, os.open(d, os.O_PATH | os.O_DIRECTORY)) for d in keep if os.path.isdir(d)]
        self.ours = False
        self.stamp: tuple[int, ...] = ()

    def _mount(self, *args: Any) -> None:
        import ctypes

        if self.libc.mount(*args) != 0:
            raise OSError(ctypes.get_errno(), f"mount on {args[1]!r} failed")

    def fresh(self) -> None:
        if self.ours and self.libc.umount2(self.path.encode(), _MNT_DETACH) != 0:
            import ctypes

            raise OSError(ctypes.get_errno(), f"cannot unmount {self.path}")
        self.ours = False
        self._mount(b"tmpfs", self.path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOATIME, self.opts)
        self.ours = True
        for d, fd in self.keep:
            os.makedirs(d, mode=0o755, exist_ok=True)
            self._mount(f"/proc/self/fd/{fd}".encode(), d.encode(), None, _MS_BIND | _MS_REC, None)
            self._mount(None, d.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None)
        self.stamp = self._stamp()

    def _stamp(self) -> tuple[int, ...]:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_atime_ns, st.st_nlink, st.st_mode, st.st_uid, st.st_gid)

    def clean(self) -> bool:
        """Remount if the sample changed anything (a new entry changes the folder's mtime)."""
        if self._stamp() == self.stamp:
            return False
        self.fresh()
        return True


# --- rlimits level: no namespaces, so clean up by uid ---------------------


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove ``name`` (under ``parent_fd``) and everything below it without
    recursion and without following symlinks: two descriptors open at a time,
    whatever the depth (a 3,000-deep tree is 6,000 characters of path, past
    PATH_MAX, and 3,000 descriptors, past RLIMIT_NOFILE)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError:
        try:
            os.unlink(name, dir_fd=parent_fd)
        except OSError:
            pass
        return
    path: list[str] = []  # names from ``name`` down to where fd is
    while True:
        sub = None
        try:
            with os.scandir(fd) as entries:
                for e in entries:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            sub = e.name
                            break
                        os.unlink(e.name, dir_fd=fd)
                    except OSError:
                        pass
        except OSError:
            pass
        if sub is not None:
            try:
                child = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                try:
                    os.rmdir(sub, dir_fd=fd)
                except OSError:
                    pass
                continue
            os.close(fd)
            fd = child
            path.append(sub)
            continue
        if not path:
            os.close(fd)
            try:
                os.rmdir(name, dir_fd=parent_fd)
            except OSError:
                pass
            return
        up = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = up
        try:
            os.rmdir(path.pop(), dir_fd=fd)
        except OSError:
            pass


def _remove_owned_by(folder: str, uid: int) -> None:
    """Top-level entries of a shared folder (/tmp, /dev/shm) that the sample's uid owns."""
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with os.scandir(dfd) as entries:
            mine = [e.name for e in entries if e.stat(follow_symlinks=False).st_uid == uid]
        for name in mine:
            remove_tree(dfd, name)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _top(path: str) -> str:
    """The entry of /tmp that ``path`` lies under ("" if none)."""
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "tmp" else ""


def _remove_all_but(folder: str, keep: set[str]) -> None:
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in os.listdir(dfd):
            if name not in keep:
                remove_tree(dfd, name)
    finally:
        os.close(dfd)


def _as_uid(uid: int, fn: Callable[[], None]) -> None:
    """Run ``fn`` in a throwaway child under ``uid`` (what the kernel lets a uid do to itself)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            fn()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _kill_own_uid() -> None:
    import signal

    for _ in range(3):  # kill(-1) as the uid: every process of that uid but the caller
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            break


# --- SysV IPC --------------------------------------------------------------

_IPC = (("shm", 7, 9), ("msg", 7, 9), ("sem", 4, 6))  # /proc/sysvipc file, uid and cuid columns


def _remove_ipc(libc: Any, uid: int | None) -> int:
    """Remove every SysV IPC object of this IPC namespace (``uid``: only those
    that uid owns or created).  A segment still attached goes when its last
    user does; the sample's processes are dead by now."""
    removed = 0
    for kind, uid_col, cuid_col in _IPC:
        try:
            with open(f"/proc/sysvipc/{kind}", "rb") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            try:
                ident = int(cols[1])
                if uid is not None and uid not in (int(cols[uid_col]), int(cols[cuid_col])):
                    continue
            except (IndexError, ValueError):
                continue
            if kind == "shm":
                libc.shmctl(ident, 0, None)  # IPC_RMID
            elif kind == "msg":
                libc.msgctl(ident, 0, None)
            else:
                libc.semctl(ident, 0, 0)
            removed += 1
    return removed


# --- the server -----------------------------------------------------------


def _kill_everything_else(conf: dict[str, Any], pgid: int) -> None:
    """Kill the sample and anything it started, even past setsid/double fork."""
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    if conf["pid_namespace"]:
        # kill(-1) signals every process we may signal in this pid namespace
        # except ourselves and its init; forks are blocked while it runs.
        for _ in range(3):
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                break
    elif conf.get("sample_uid") is not None:
        # no pid namespace, but the uid is this worker's alone (allocated per run)
        _as_uid(conf["sample_uid"], _kill_own_uid)


def _wait_all() -> None:
    """Reap every process left (we are their subreaper): then none of the sample's runs any more."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


class _World:
    """What the server sets up once and cleans after each sample."""

    def __init__(self, conf: dict[str, Any]) -> None:
        import ctypes

        self.conf = conf
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.protections: dict[str, Any] = {}
        self.scratch: list[_Scratch] = []
        self.seccomp: _Seccomp | None = None
        self.last_pid_fd: int | None = None
        self.fresh_tmp = False  # each sample gets a fresh tmpfs on /tmp (else a folder of its own, removed after)
        self.samples = 0

    def _try(self, name: str, fn: Callable[[], Any]) -> bool:
        try:
            value = fn()
        except Exception as e:
            self.protections[name] = f"unavailable: {e}"[:200]
            return False
        self.protections[name] = True if value is None else value
        return True

    def setup(self) -> None:
        conf = self.conf
        if conf.get("cgroup_fd") is not None:
            def join() -> None:
                try:
                    os.write(conf["cgroup_fd"], b"0")  # this process (and every fork of it) joins the worker's cgroup
                finally:
                    os.close(conf["cgroup_fd"])
            self._try("memory_cgroup", join)
        else:
            self.protections["memory_cgroup"] = conf.get("cgroup_why") or "unavailable"
        if conf["private_mounts"]:
            limits = conf["scratch"]
            def tmp() -> None:
                s = _Scratch(self.libc, "/tmp", limits["tmp_bytes"], limits["tmp_inodes"], conf.get("tmp_keep", []))
                s.fresh()
                self.scratch.append(s)
            self.fresh_tmp = self._try("fresh_tmp_per_sample", tmp)
            def shm() -> None:
                s = _Scratch(self.libc, "/dev/shm", limits["shm_bytes"], limits["shm_inodes"], [])
                os.makedirs("/dev/shm", exist_ok=True)
                s.fresh()
                self.scratch.append(s)
            self._try("fresh_dev_shm_per_sample", shm)
        if conf["ipc_namespace"]:
            self._try("ipc_limits", lambda: self._ipc_limits(conf["ipc_limits"]))
        if conf["pid_namespace"]:
            def last_pid() -> None:
                self.last_pid_fd = os.open("/proc/sys/kernel/ns_last_pid", os.O_WRONLY)
                os.write(self.last_pid_fd, b"99")
            self._try("same_pids_per_sample", last_pid)
        def filt() -> None:
            self.seccomp = _Seccomp()
            if not self.seccomp.works():
                self.seccomp = None
                raise OSError("the kernel refused the filter")
        if conf.get("seccomp", True):
            self._try("seccomp", filt)
        else:
            self.protections["seccomp"] = "switched off"
        self._try("oom_protected_server", lambda: _write("/proc/self/oom_score_adj", b"-1000"))
        self.protections["server_capabilities"] = _capabilities()
        if not self.fresh_tmp:
            os.makedirs(conf["workdir_base"], mode=0o711, exist_ok=True)
        if conf.get("sample_uid") is not None and not conf["pid_namespace"]:
            # leftovers of an earlier run that had this uid (it died without cleaning up)
            self.clean_by_uid()
        if conf.get("sample_uid") is not None and _has_keys(conf["sample_uid"]):
            # keys outlive every process of their uid: an earlier run's (a
            # harness without the filter) must not reach this run's samples
            _as_uid(conf["sample_uid"], self._clear_keyring)

    def _ipc_limits(self, limits: dict[str, int]) -> None:
        for name, value in limits.items():
            _write(f"/proc/sys/kernel/{name}", str(value).encode())

    def prepare(self) -> str:
        """Before a fork: the next sample's pid and private folder."""
        if self.last_pid_fd is not None:
            os.pwrite(self.last_pid_fd, b"99", 0)
        if self.fresh_tmp:
            return "/tmp"
        self.samples += 1
        path = os.path.join(self.conf["workdir_base"], f"sample-{self.samples}")
        os.mkdir(path, 0o700)
        uid = self.conf.get("sample_uid")
        if uid is not None:
            os.chown(path, uid, uid)
        return path

    def clean(self, workdir: str) -> None:
        """After a sample (all its processes reaped): nothing of it may reach the next one."""
        for s in self.scratch:
            s.clean()
        if self.conf["ipc_namespace"] and self.seccomp is None:  # (the filter refuses SysV IPC)
            _remove_ipc(self.libc, None)
        if not self.fresh_tmp:
            base = os.open(self.conf["workdir_base"], os.O_RDONLY | os.O_DIRECTORY)
            try:
                remove_tree(base, os.path.basename(workdir))
            finally:
                os.close(base)
            if self.conf["private_mounts"]:  # the worker's own /tmp: everything but the interpreter and the base
                _remove_all_but("/tmp", {_top(p) for p in [self.conf["workdir_base"], *self.conf.get("tmp_keep", [])]})
            if self.conf.get("sample_uid") is not None:
                self.clean_by_uid()
        if self.seccomp is None and self.conf.get("sample_uid") is not None:
            _as_uid(self.conf["sample_uid"], self._clear_keyring)

    def clean_by_uid(self) -> None:
        uid = self.conf["sample_uid"]
        for folder in ("/tmp", "/var/tmp", "/dev/shm"):
            _remove_owned_by(folder, uid)
        if not self.conf["ipc_namespace"]:
            _remove_ipc(self.libc, uid)

    def _clear_keyring(self) -> None:
        import ctypes

        nr = _SYSCALLS["keyctl"][0 if os.uname().machine == "x86_64" else 1]
        self.libc.syscall(ctypes.c_long(nr), ctypes.c_long(7), ctypes.c_long(-4))  # KEYCTL_CLEAR @u


def _has_keys(uid: int) -> bool:
    """Whether the kernel holds keys (or a keyring) for ``uid`` (/proc/key-users lists every uid to root)."""
    try:
        with open("/proc/key-users") as f:
            return any(line.split(":")[0].strip() == str(uid) for line in f)
    except OSError:
        return False


def _capabilities() -> str:
    """The server's effective capabilities, as /proc shows them (hex)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return line.split()[1]
    except OSError:
        pass
    return "?"


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _spawn(sock_fd: int, ctrl: socket.socket, world: _World) -> tuple[int, int, int, str]:
    """Fork the child for the next sample: set up, then it waits for its job.

    Returns (pid, read end of its output pipe, read end of its set-up pipe,
    its working folder).  Everything before the child writes "ok" on the
    set-up pipe happens before any sample code runs, so the set-up's outcome
    is trusted.
    """
    conf = world.conf
    sample_uid = conf.get("sample_uid")
    workdir = world.prepare()
    out_r, out_w = os.pipe()
    st_r, st_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            ctrl.close()
            os.close(out_r)
            os.close(st_r)
            os.setpgid(0, 0)
            os.dup2(out_w, 1)  # fd 0 is already /dev/null (main())
            os.dup2(out_w, 2)
            os.dup2(out_w, _SPARE_OUT)
            os.dup2(0, _SPARE_IN)
            os.dup2(sock_fd, _CONN_FD)
            try:  # the OOM killer takes the sample before the server, the judge or anyone else
                _write("/proc/self/oom_score_adj", b"1000")
            except OSError:
                pass
            if sample_uid is not None:
                os.setgroups([])
                os.setgid(sample_uid)
                os.setuid(sample_uid)  # drops every capability: RLIMIT_NPROC now binds
            os.chdir(workdir)
            os.environ["TMPDIR"] = workdir
            for res, value in conf["_rlimits"]:
                resource.setrlimit(res, (value, value))
            if world.seccomp is not None:
                world.seccomp.install()
            os.write(st_w, b"ok")
            # nothing of the server's stays open: only stdio, the spares and the socket
            os.closerange(3, _SPARE_OUT)
            conn = socket.socket(fileno=_CONN_FD)
            # sys.stdin/stdout/stderr are the server's own objects on fds 0-2,
            # which now are /dev/null and the capture pipe; the server never
            # writes to them, so their buffers are empty.  (Opening three new
            # ones cost 0.4-0.6 ms per sample.)
        except BaseException as e:  # the sandbox could not set up: report, never run the sample
            try:
                os.write(st_w, f"failed: {e!r}"[:500].encode("utf-8", "replace"))
            finally:
                os._exit(70)
        reader = Reader(conn)
        try:
            first = reader.recv()  # from the judge, straight to us
        except BaseException:
            os._exit(0)  # the judge went away before giving us a sample
        _child_main(conn, reader, first)
        os._exit(0)
    os.close(out_w)
    os.close(st_w)
    os.close(sock_fd)
    return pid, out_r, st_r, workdir


class _Watch:
    """The sample's output (counted, the first part kept) and its set-up report."""

    def __init__(self, out_r: int, st_r: int) -> None:
        self.out_r = out_r
        self.st_r = st_r
        self.head = bytearray()
        self.total = 0
        self.setup = b""

    def _read_out(self) -> None:
        try:
            chunk = os.read(self.out_r, 1 << 16)
        except OSError:
            chunk = b""
        if chunk:
            self.total += len(chunk)
            if len(self.head) < KEEP_OUTPUT:
                self.head += chunk[: KEEP_OUTPUT - len(self.head)]
        else:
            os.close(self.out_r)
            self.out_r = -1

    def _read_setup(self) -> None:
        try:
            chunk = os.read(self.st_r, 512)
        except OSError:
            chunk = b""
        if chunk and len(self.setup) < 512:
            self.setup += chunk
        elif not chunk:
            os.close(self.st_r)
            self.st_r = -1

    def until(self, ctrl: socket.socket) -> None:
        """Drain output and the set-up pipe until the judge speaks on ``ctrl``."""
        import select

        while True:
            fds = [f for f in (self.out_r, self.st_r) if f != -1]
            ready, _, _ = select.select([*fds, ctrl], [], [])
            if self.out_r in ready:
                self._read_out()
            if self.st_r != -1 and self.st_r in ready:
                self._read_setup()
            if ctrl in ready:
                return

    def finish(self) -> None:
        """After the kill: what is still in the pipes (the set-up report may not have been read)."""
        while self.st_r != -1:
            self._read_setup()
        if self.out_r != -1:
            os.set_blocking(self.out_r, False)
            try:
                while self.out_r != -1:
                    self._read_out()
            except BlockingIOError:
                pass
            if self.out_r != -1:
                os.close(self.out_r)
                self.out_r = -1

    def setup_status(self) -> str:
        if self.setup == b"ok":
            return "ok"
        if self.setup.startswith(b"ok"):
            return "ok"
        return self.setup.decode("utf-8", "replace") or "the sample process died during its set-up"


def _wait_status(pid: int) -> dict[str, Any]:
    try:
        _, raw = os.waitpid(pid, 0)
        return {"exit": os.waitstatus_to_exitcode(raw)}
    except ChildProcessError:  # already reaped (never expected)
        return {"exit": None}


def _serve(ctrl: socket.socket, world: _World) -> None:
    """prepare(fd) forks a waiting child; end[(fd)] kills it, replies, cleans
    up, and (given the next sample's socket) forks the next one."""
    conf = world.conf
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
        pid, out_r, st_r, workdir = _spawn(next_fd, ctrl, world)
        next_fd = None
        watch = _Watch(out_r, st_r)
        watch.until(ctrl)
        fds = []
        try:
            end = recv_msg(ctrl, fds)
        except EOFError:
            _kill_everything_else(conf, pid)
            return
        if end.get("op") != "end" or len(fds) > 1:
            raise WireError("expected an end message")
        _kill_everything_else(conf, pid)
        watch.finish()
        reply: dict[str, Any] = {"output_bytes": watch.total, "output_head": watch.head.decode("utf-8", "replace"),
                                 "setup": watch.setup_status()}
        if end.get("status", True):
            reply["status"] = _wait_status(pid)
        else:
            reply["status"] = {"exit": None}  # the sample is SIGKILLed already: reaped below
        if world.fresh_tmp:
            # The judge has what it needs: answer now, clean up while it
            # finishes the verdict (a remount: well under a millisecond).
            send_msg(ctrl, reply)
            _wait_all()
            world.clean(workdir)  # raises if it cannot: the judge then starts a fresh server
        else:
            # No fresh tmpfs (the rlimits level): the clean-up removes
            # files one by one, on the host's disk there (a 3,000-deep tree
            # takes seconds), which must not count against the next
            # sample's time: answer after it.
            _wait_all()
            world.clean(workdir)
            send_msg(ctrl, reply)
        if fds:
            next_fd = fds[0]


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
    "struct sys textwrap time types typing unicodedata shutil signal ctypes"
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
    import ctypes

    # PR_SET_CHILD_SUBREAPER: orphans of a sample are ours to reap, so we
    # know when the last of them is gone
    ctypes.CDLL(None).prctl(36, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    conf["_rlimits"] = [(getattr(resource, name), int(value)) for name, value in conf["rlimits"].items()]
    devnull = os.open(os.devnull, os.O_RDONLY)  # every sample's stdin
    os.dup2(devnull, 0)
    os.close(devnull)
    world = _World(conf)
    world.setup()
    # Forked children share the server's pages copy-on-write; a garbage
    # collection in a child would walk (and so copy) every object the
    # server imported.  Frozen objects are never walked.
    import gc

    gc.collect()
    gc.freeze()
    ctrl = socket.socket(fileno=int(conf["ctrl_fd"]))
    send_msg(ctrl, {"ready": True, "uid": os.getuid(), "pid": os.getpid(), "protections": world.protections})
    _serve(ctrl, world)


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
    """namespaces level: cover harness paths (folders with an empty tmpfs,
    files with /dev/null); we own this mount namespace."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for p in paths:
        if os.path.isdir(p):
            ok = libc.mount(b"none", p.encode(), b"tmpfs", 0, b"size=1m,mode=0755") == 0
        elif os.path.exists(p):
            ok = libc.mount(b"/dev/null", p.encode(), None, _MS_BIND, None) == 0
        else:
            continue
        if not ok:
            raise OSError(ctypes.get_errno(), f"cannot hide {p}")


if __name__ == "__main__":
    main()
