"""The judge's side of one sample's channel: requests under deadlines, handles, callbacks.

The dataset's test runs here, in the trusted judge; the sample only answers
requests.  ``candidate`` is a RemoteObject standing for the program's entry
point: calling it sends the (plain-data) arguments to the sample and brings
back plain data.  What the program makes that is not plain data (an object of
a class it defines, a generator) comes back as another RemoteObject, whose
calls, attribute reads, iteration and indexing go to the sample the same way;
the program's own names the test uses (MBPP 367's ``Node``) are bound to
RemoteObjects too.  A callable the test passes to the candidate stays here:
the sample gets a proxy that asks the judge to call it (with plain data and
handles as arguments) and gets plain data back.

Whatever the sample would *decide* -- whether its object equals a value,
is true, hashes, contains something, or what arithmetic on it gives (which
would show it the test's expected value) -- is never asked: the test is
stopped and the sample's verdict is ``unverified``, kept apart from passes.
So is a test that passes something that cannot cross (an open file) or
whose callable returns such a thing.

Every read rechecks the deadline; a reply is refused when it is too large,
holds too many objects, nests too deeply or builds sets whose keys share
hashes, and decoding it counts against the sample's time.  The outcome of a
sample is sticky: once a request timed out, died, went wrong or was
unverifiable, every later request raises the same again, so a test that
swallows the first (``except BaseException``) cannot turn it into a pass.
"""

from __future__ import annotations

import builtins
import math
import select
import socket
import threading
import time
from typing import Any

from .server import (MAX_MESSAGE, Decoder, Encoder, NonPlain, WireError, exc_info, frame, parse)

MAX_NESTING = 50  # requests inside callbacks inside requests ...
# Replies over this size are parsed and decoded one at a time, judge-wide: the
# objects one decodes (at most MAX_ITEMS) are then the most the judge holds
# for samples at any moment, however many servers reply at once.
BIG_MESSAGE = 1 << 20
_BIG = threading.Lock()
# What a candidate raises that would steer the test's own control flow (a
# StopIteration ends the test's ``for`` loop over ``map(candidate, ...)``
# before any assert); it reaches the test as a failure it cannot catch.
CONTROL_FLOW = frozenset({"StopIteration", "StopAsyncIteration", "GeneratorExit", "KeyboardInterrupt", "SystemExit"})


# --- how a sample ends early (BaseException: a test's ``except Exception`` cannot swallow them) ---

class SampleSignal(BaseException):
    """Base of the ways a sample's run ends before its test does; ``detail``
    says how (where it timed out, why it is unverified or the sandbox broke)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class Timeout(SampleSignal):
    """``detail``: where the sample was when the deadline passed."""


class SampleDied(SampleSignal):
    """The sample's socket closed: it exited, crashed or was killed."""


class SampleEnded(SampleSignal):
    def __init__(self, verdict: str, detail: str) -> None:
        super().__init__(detail)
        self.verdict = verdict


class Unverified(SampleSignal):
    """Only the sample could decide the verdict: ``detail`` says why."""


class Broken(SampleSignal):
    """The sandbox itself failed (the judge retries the sample on a fresh server)."""


class CandidateError(Exception):
    """A non-builtin exception the candidate raised, by name."""


# Callables the judge never runs for a sample, whatever the test passes: they
# would let the sample read or run anything in the judge.
_NEVER_CALLED = frozenset(id(f) for f in (
    eval, exec, compile, open, __import__, getattr, setattr, delattr, globals, locals, vars, dir, input,
    breakpoint, format, str.format, str.format_map, type.__subclasses__, object.__getattribute__,
    object.__setattr__, object.__reduce_ex__,
))
_NEVER_MODULES = ("os", "posix", "subprocess", "shutil", "sys", "importlib", "ctypes", "pickle", "marshal", "io",
                  "_io", "socket", "signal")


def _never_called(fn: Any) -> bool:
    if id(fn) in _NEVER_CALLED:
        return True
    module = getattr(fn, "__module__", None)
    return isinstance(module, str) and module.split(".")[0] in _NEVER_MODULES


# --- the socket, with deadlines ---------------------------------------------

class Channel:
    """Whole messages over a non-blocking socket; every wait rechecks the deadline."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.buf = bytearray()
        self._in = select.poll()
        self._in.register(sock, select.POLLIN)

    @staticmethod
    def _ms(deadline: float) -> int:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("")
        return max(1, math.ceil(remaining * 1000))

    def send(self, data: bytes, deadline: float) -> None:
        """A sample that stops reading cannot hold the judge past the deadline either."""
        view = memoryview(data)
        out: select.poll | None = None
        while view:
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                if out is None:
                    out = select.poll()
                    out.register(self.sock, select.POLLOUT)
                out.poll(self._ms(deadline))
                continue
            except OSError:
                raise SampleDied() from None
            view = view[n:]

    def recv(self, deadline: float) -> bytes:
        """The next message's body."""
        need = 4
        if not self.buf and self._in.poll(self._ms(deadline)):
            # the usual case: one read brings exactly one whole message
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                chunk = None
            except OSError:
                raise SampleDied() from None
            if chunk is not None:
                if not chunk:
                    raise SampleDied()
                if len(chunk) >= 4 and int.from_bytes(chunk[:4], "big") == len(chunk) - 4:
                    return chunk[4:]
                self.buf += chunk
        while True:
            if len(self.buf) >= 4:
                size = int.from_bytes(self.buf[:4], "big")
                if size > MAX_MESSAGE:
                    raise SampleEnded("failed", f"the sample sent a message of {size} bytes "
                                                f"(the limit is {MAX_MESSAGE})")
                need = 4 + size
                if len(self.buf) >= need:
                    data = bytes(self.buf[4:need])
                    del self.buf[:need]
                    return data
            # rechecked before every read, however little each brings; wait
            # first (a reply is rarely there already: no EAGAIN round)
            if not self._in.poll(self._ms(deadline)):
                continue
            try:
                chunk = self.sock.recv(min(max(need - len(self.buf), 1 << 16), 1 << 20))
            except BlockingIOError:
                continue
            except OSError:
                raise SampleDied() from None
            if not chunk:
                raise SampleDied()
            self.buf += chunk


# --- proxies ------------------------------------------------------------------

def _decided_by_sample(what: str) -> Any:
    def method(self: "RemoteObject", *args: Any) -> Any:
        self._RemoteObject__s.unverify(f"the test {what} an object the program made "
                                       f"({self._RemoteObject__type}), which only the sample could answer")
    return method


# Dunder names read from the sample on request; other dunders are protocol
# probes (numpy's __array_interface__, copy's __deepcopy__) that get an
# AttributeError here instead of a round trip.
_FORWARDED_DUNDERS = frozenset({"__name__", "__qualname__", "__doc__", "__module__", "__dict__", "__annotations__",
                                "__defaults__", "__kwdefaults__", "__wrapped__"})


class RemoteObject:
    """An object that lives in the sample; its operations are requests to the sample."""

    __slots__ = ("_RemoteObject__s", "_RemoteObject__hid", "_RemoteObject__type", "__weakref__")

    def __init__(self, session: "Session", hid: int, type_name: str) -> None:
        object.__setattr__(self, "_RemoteObject__s", session)
        object.__setattr__(self, "_RemoteObject__hid", hid)
        object.__setattr__(self, "_RemoteObject__type", type_name)

    def __q(self, op: str, **fields: Any) -> Any:
        return self.__s.request({"q": op, "t": self.__hid, **fields}, op)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        s = self.__s
        return self.__q("call", a=s.encode(list(args)), k=s.encode(kwargs))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name not in _FORWARDED_DUNDERS:
            raise AttributeError(name)
        return self.__q("getattr", n=name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__q("setattr", n=name, v=self.__s.encode(value))

    def __delattr__(self, name: str) -> None:
        self.__q("delattr", n=name)

    def __iter__(self) -> Any:
        it = self.__q("iter")
        return it if type(it) is RemoteObject else iter(it)

    def __next__(self) -> Any:
        return self.__q("next")

    def __reversed__(self) -> Any:
        it = self.__q("reversed")
        return it if type(it) is RemoteObject else iter(it)

    def __len__(self) -> int:
        n = self.__q("len")
        if type(n) is not int or n < 0:
            raise TypeError("the object's __len__ gave no length")
        return n

    def __getitem__(self, key: Any) -> Any:
        return self.__q("getitem", k=self.__s.encode(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__q("setitem", k=self.__s.encode(key), v=self.__s.encode(value))

    def __delitem__(self, key: Any) -> None:
        self.__q("delitem", k=self.__s.encode(key))

    def __typed(self, op: str, kind: type) -> Any:
        v = self.__q(op)
        if type(v) is not kind:
            raise TypeError(f"{op}() of the object returned {type(v).__name__}")
        return v

    def __str__(self) -> str:
        if self.__s.ended is not None:  # the sample is gone: only its name is left (error messages)
            return repr(self)
        return self.__typed("str", str)

    def __float__(self) -> float:
        return self.__typed("float", float)

    def __int__(self) -> int:
        return self.__typed("int", int)

    def __index__(self) -> int:
        return self.__typed("index", int)

    def __complex__(self) -> complex:
        return self.__typed("complex", complex)

    def __abs__(self) -> Any:
        return self.__q("abs")

    def __neg__(self) -> Any:
        return self.__q("neg")

    def __pos__(self) -> Any:
        return self.__q("pos")

    def __repr__(self) -> str:
        return f"<{self.__type} object in the sandbox>"

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        return _decided_by_sample("formats")(self)

    __eq__ = _decided_by_sample("compares (==)")
    __ne__ = _decided_by_sample("compares (!=)")
    __lt__ = _decided_by_sample("orders (<)")
    __le__ = _decided_by_sample("orders (<=)")
    __gt__ = _decided_by_sample("orders (>)")
    __ge__ = _decided_by_sample("orders (>=)")
    __hash__ = _decided_by_sample("hashes")  # type: ignore[assignment]
    __bool__ = _decided_by_sample("takes the truth of")
    __contains__ = _decided_by_sample("looks for a value in")
    __enter__ = _decided_by_sample("enters (with)")
    __exit__ = _decided_by_sample("exits (with)")
    __round__ = _decided_by_sample("rounds")
    __trunc__ = _decided_by_sample("truncates")
    __floor__ = _decided_by_sample("floors")
    __ceil__ = _decided_by_sample("ceils")
    __invert__ = _decided_by_sample("inverts (~)")

    def __reduce_ex__(self, protocol: Any) -> Any:  # copy, deepcopy, pickle: the object lives in the sample
        self.__s.unverify(f"the test copies an object the program made ({self.__type}), which stays in the sample")


# Arithmetic would hand the sample the other operand, often the expected value
# (``abs(result - expected) < 1e-6``): unverified, both ways round.
for _name in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow", "lshift", "rshift",
              "and", "xor", "or"):
    setattr(RemoteObject, f"__{_name}__", _decided_by_sample(f"computes ({_name}) with"))
    setattr(RemoteObject, f"__r{_name}__", _decided_by_sample(f"computes ({_name}) with"))
del _name


# --- one sample -------------------------------------------------------------

class Session:
    """One sample's conversation with the judge.

    ``job``: the program, its setup and entry point (sent to the sample with
    the first request, or alone by load()).  Limits: ``tl.load_s`` to define
    the program, ``tl.call_s`` per request (callbacks included), ``tl.total_s``
    for everything from ``start``.
    """

    def __init__(self, worker: Any, job: dict[str, Any], tl: Any, start: float) -> None:
        self.worker = worker
        self.job = job
        self.tl = tl
        self.start = start
        self.deadline = start + tl.total_s  # of the innermost request waiting
        self.channel: Channel | None = None
        self.ended: SampleSignal | None = None  # sticky
        self.handles: dict[int, RemoteObject] = {}
        self.callables: dict[int, Any] = {}
        self._callable_ids: dict[int, int] = {}
        self._encoder = Encoder(self._export)
        self.depth = 0
        self.load_s: float | None = None
        self.max_call_s = 0.0
        self.requests = 0
        self.callbacks = 0
        self.where = "defining the program"
        self.entry = RemoteObject(self, 0, str(job["entry_point"]))
        self.handles[0] = self.entry

    # -- ending ----------------------------------------------------------------

    def _end(self, signal: SampleSignal) -> SampleSignal:
        if self.ended is None:
            self.ended = signal
        return self.ended

    def unverify(self, reason: str) -> Any:
        raise self._end(Unverified(reason))

    # -- values ------------------------------------------------------------------

    def encode(self, x: Any) -> Any:
        try:
            return self._encoder.encode(x)
        except NonPlain as e:
            self.unverify(f"the test passes a {e} that cannot cross to the sample")

    def _export(self, x: Any) -> list:
        """A non-plain value the judge sends: a handle of the sample's, or a callable of the test's."""
        if type(x) is RemoteObject:
            if x._RemoteObject__s is not self:
                self.unverify("the test passes an object of another sample")
            return ["H", x._RemoteObject__hid]
        if callable(x):
            if _never_called(x):
                self.unverify(f"the test passes {getattr(x, '__name__', type(x).__name__)!s}, "
                              "which the judge never runs for a sample")
            cid = self._callable_ids.get(id(x))
            if cid is None:
                cid = len(self.callables) + 1
                self.callables[cid] = x
                self._callable_ids[id(x)] = cid
            return ["C", cid]
        self.unverify(f"the test passes a {type(x).__name__} object, which cannot cross to the sample")
        raise AssertionError("unreachable")

    def _resolve(self, tag: str, x: list) -> Any:
        if tag == "H" and len(x) == 3 and type(x[1]) is int and type(x[2]) is str and x[1] >= 0:
            obj = self.handles.get(x[1])
            if obj is None:
                obj = self.handles[x[1]] = RemoteObject(self, x[1], x[2][:100])
            return obj
        if tag == "C" and len(x) == 2 and type(x[1]) is int and x[1] in self.callables:
            return self.callables[x[1]]
        raise WireError(f"bad handle {str(x)[:60]}")

    def decode(self, x: Any) -> Any:
        """A value from the sample: under the decoding budget, and on the sample's time."""
        try:
            value = Decoder(self._resolve, limited=True).decode(x)
        except (WireError, RecursionError, MemoryError) as e:
            raise self._end(SampleEnded("failed", f"the sample sent a value the judge refuses ({e})")) from None
        if time.monotonic() > self.deadline:
            raise self._end(Timeout(self.where))
        return value

    # -- the wire ------------------------------------------------------------------

    def _recv(self, deadline: float) -> Any:
        """The next message, with the values in it decoded (a reply's "ok", a callback's arguments)."""
        assert self.channel is not None
        try:
            data = self.channel.recv(deadline)
        except Timeout:
            raise self._end(Timeout(self.where)) from None
        except SampleSignal as e:
            raise self._end(e) from None
        if len(data) <= BIG_MESSAGE:
            return self._parse(data)
        with _BIG:
            return self._parse(data)

    def _parse(self, data: bytes) -> Any:
        try:
            msg = parse(data, limited=True)
        except WireError as e:
            raise self._end(SampleEnded("failed", f"the sample sent a malformed reply ({e})")) from None
        if isinstance(msg, dict):
            for key in ("ok", "a", "k"):
                if key in msg:
                    msg[key] = self.decode(msg[key])
        return msg

    def _send(self, msg: dict[str, Any], deadline: float) -> None:
        assert self.channel is not None
        try:
            self.channel.send(frame(msg), deadline)
        except Timeout:
            raise self._end(Timeout(self.where)) from None
        except SampleSignal as e:
            raise self._end(e) from None

    def _begin(self, first: dict[str, Any]) -> None:
        """Hand the job (and maybe the first request) to the waiting sample process."""
        from .worker import SandboxBroken

        try:
            self.channel = Channel(self.worker.begin(first))
        except SandboxBroken as e:  # sticky too: a test's ``except Exception`` must not hide it
            raise self._end(Broken(str(e))) from None

    def _loaded(self, msg: Any, t0: float) -> dict[str, Any]:
        if isinstance(msg, dict) and "load_error" in msg:
            info = msg["load_error"] if isinstance(msg["load_error"], dict) else {}
            if info.get("memory") is True:
                raise self._end(SampleEnded("memory", "MemoryError while defining the program"))
            raise self._end(SampleEnded("failed", f"program raised {info.get('type')}: {str(info.get('msg', ''))[:200]}"))
        if not isinstance(msg, dict) or msg.get("loaded") is not True:
            raise self._end(SampleEnded("failed", "the sample sent a malformed first message"))
        self.load_s = time.monotonic() - t0
        names = msg.get("names")
        return names if isinstance(names, dict) else {}

    def load(self, want: list[str]) -> dict[str, Any]:
        """Send the job alone; wait until the program is defined.  Returns the
        program's values for the names in ``want`` it defines."""
        if self.ended is not None:
            raise self.ended
        t0 = time.monotonic()
        self._begin({"job": {**self.job, "want": want}})
        names = self._loaded(self._recv(min(t0 + self.tl.load_s, self.deadline)), t0)
        if len(names) > len(want):
            raise self._end(SampleEnded("failed", "the sample sent names the test did not ask for"))
        return {k: self.decode(v) for k, v in names.items() if k in want}

    def request(self, msg: dict[str, Any], op: str) -> Any:
        """One request of the test's; serves the sample's callbacks until its reply comes."""
        if self.ended is not None:
            raise self.ended
        if self.depth >= MAX_NESTING:
            raise self._end(SampleEnded("failed", f"requests and callbacks nested over {MAX_NESTING} deep"))
        t0 = time.monotonic()
        outer = self.deadline
        if self.channel is None:  # the job goes with the test's first request
            self.deadline = min(t0 + self.tl.load_s, outer)
            try:
                self._begin({"job": {**self.job, "want": []}, **msg})
                self._loaded(self._recv(self.deadline), t0)
            finally:
                self.deadline = outer
            # The first call's time starts when the program is defined.  (A
            # sample that says so late gets at most load_s + call_s for it.)
            t0 = time.monotonic()
            deadline = min(t0 + self.tl.call_s, outer)
        else:
            deadline = min(t0 + self.tl.call_s, outer)
            self._send(msg, deadline)
        self.requests += 1
        self.where = f"request {self.requests} ({op})"
        self.depth += 1
        self.deadline = deadline
        try:
            while True:
                reply = self._recv(deadline)
                if not (isinstance(reply, dict) and "cb" in reply):
                    break
                self._callback(reply)
            result = self._result(reply, op)
        finally:
            self.depth -= 1
            self.deadline = outer
        if self.depth == 0:
            self.max_call_s = max(self.max_call_s, time.monotonic() - t0)
        return result

    def _result(self, reply: Any, op: str) -> Any:
        if isinstance(reply, dict) and "ok" in reply:
            return reply["ok"]  # decoded on arrival
        if isinstance(reply, dict) and isinstance(reply.get("exc"), dict):
            raise self._candidate_exception(reply["exc"], op)
        raise self._end(SampleEnded("failed", "the sample sent a malformed reply"))

    def _candidate_exception(self, info: dict[str, Any], op: str) -> BaseException:
        """What the candidate raised, rebuilt as the builtin exception where there is one,
        so a test that expects e.g. ValueError still sees one."""
        name, msg = str(info.get("type", "?"))[:100], str(info.get("msg", ""))[:500]
        builtin = info.get("builtin") is True
        if info.get("memory") is True:
            return self._end(SampleEnded("memory", f"MemoryError: {msg}".strip()))
        if builtin and name == "StopIteration" and op == "next":
            return StopIteration()  # the iterator protocol's own end, asked for
        cls = getattr(builtins, name, None) if builtin else None
        if builtin and (name in CONTROL_FLOW or not (isinstance(cls, type) and issubclass(cls, Exception))):
            # a control-flow exception (StopIteration, SystemExit, ...): the sample fails, the test's flow stays its own
            return self._end(SampleEnded("failed", f"candidate raised {name}: {msg}".rstrip(": ")))
        exc: BaseException
        try:
            exc = cls(msg) if isinstance(cls, type) else CandidateError(f"{name}: {msg}")
        except Exception:
            exc = CandidateError(f"{name}: {msg}")
        exc._codeeval_candidate = True  # type: ignore[attr-defined]
        return exc

    def _callback(self, msg: dict[str, Any]) -> None:
        """The sample calls a callable the test passed: run it here, send back plain data."""
        cid = msg.get("cb")
        fn = self.callables.get(cid) if type(cid) is int else None
        if fn is None:
            raise self._end(SampleEnded("failed", "the sample called back a function the test never passed"))
        args, kwargs = msg.get("a"), msg.get("k")  # decoded on arrival
        if type(args) is not list or type(kwargs) is not dict or any(type(k) is not str for k in kwargs):
            raise self._end(SampleEnded("failed", "the sample sent a malformed callback"))
        self.callbacks += 1
        self.depth += 1
        try:
            result = fn(*args, **kwargs)
            reply = {"ok": self.encode(result)}
        except SampleSignal:
            raise
        except BaseException as e:  # the test's function failed: the sample sees the exception
            reply = {"exc": exc_info(e)}
        finally:
            self.depth -= 1
        if self.ended is not None:  # a swallowed signal inside the callable
            raise self.ended
        self._send(reply, self.deadline)


__all__ = ["Session", "RemoteObject", "Channel", "SampleSignal", "Timeout", "SampleDied", "SampleEnded",
           "Unverified", "Broken", "CandidateError", "CONTROL_FLOW"]
