"""The judge, with the real sandbox: tests run in the judge, never next to the sample.

Objects the program makes and names it defines are handles; callables the
test passes are called back in the judge; whatever only the sample could
answer is ``unverified``; control flow stays the test's; replies are decoded
under a budget and every read rechecks the deadline.
"""

from __future__ import annotations

import textwrap

import pytest

from pytest_codeeval.sandbox import Outcome, SampleJob, SandboxPool, TimeLimits
from pytest_codeeval.sandbox.judge import safe_text

TL = TimeLimits(load_s=3.0, call_s=2.0, total_s=6.0)


@pytest.fixture(scope="module")
def pool() -> SandboxPool:
    with SandboxPool(workers=2) as p:
        yield p


def judge(pool: SandboxPool, program: str, test: str, entry: str = "f", tl: TimeLimits = TL) -> Outcome:
    [o] = pool.run([SampleJob(textwrap.dedent(program), entry, textwrap.dedent(test), time_limits=tl)],
                   rerun_timeouts=False)
    return o


# --- handles: what the program makes stays in the sandbox ---------------------------

TREE = """
class Node:
    def __init__(self, data):
        self.data = data
        self.left = None
        self.right = None

def height(root):
    return 0 if root is None else 1 + max(height(root.left), height(root.right))
"""
TREE_TEST = """
def check(candidate):
    root = Node(1)
    root.left = Node(2)
    root.left.left = Node(3)
    assert root.left.data == 2 and root.left is root.left
    assert height(root) == 3
    assert candidate(Node(9)) == 1
"""


def test_the_programs_own_names_are_handles(pool: SandboxPool) -> None:
    """MBPP 367 builds trees of the program's Node: once run next to the sample (forgeable), now in the judge."""
    assert (judge(pool, TREE, TREE_TEST, "height").verdict, "") == ("passed", "")
    wrong = TREE.replace("1 + max", "2 + max")
    o = judge(pool, wrong, TREE_TEST, "height")
    assert o.verdict == "failed" and o.detail == "assertion failed: assert height(root) == 3"


def test_returned_iterators_are_walked_through_the_channel(pool: SandboxPool) -> None:
    program = "def f(n):\n    for i in range(n):\n        yield i * i\n"
    assert judge(pool, program, "def check(candidate):\n    assert list(candidate(4)) == [0, 1, 4, 9]\n").passed
    assert judge(pool, program, "def check(candidate):\n    assert sum(candidate(4)) == 14\n").passed
    assert judge(pool, "def f(n):\n    return map(str, range(n))\n",
                 "def check(candidate):\n    assert list(candidate(2)) == ['0', '1']\n").passed


@pytest.mark.parametrize("test, why", [
    ("assert candidate() == 5", "compares (==)"),
    ("assert candidate()", "takes the truth of"),
    ("assert abs(candidate() - 5) < 1e-6", "computes (sub) with"),
    ("assert {candidate()}", "hashes"),
    ("assert 5 in candidate()", "looks for a value in"),
    ("assert [candidate()] == [5]", "compares (==)"),
])
def test_what_only_the_sample_could_answer_is_unverified(pool: SandboxPool, test: str, why: str) -> None:
    """An object equal to everything (or true, or anything else its own code decides) never passes."""
    program = """
    class Anything:
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        def __bool__(self): return True
        def __hash__(self): return 0
        def __sub__(self, other): return 0
        def __contains__(self, x): return True
    def f():
        return Anything()
    """
    o = judge(pool, program, f"def check(candidate):\n    {test}\n")
    assert o.verdict == "unverified" and why in o.detail and "Anything" in o.detail, o


def test_a_test_that_swallows_unverified_stays_unverified(pool: SandboxPool) -> None:
    program = "class A:\n    def __eq__(s, o): return True\ndef f():\n    return A()\n"
    test = "def check(candidate):\n    try:\n        assert candidate() == 1\n    except BaseException:\n        pass\n"
    assert judge(pool, program, test).verdict == "unverified"


def test_subclasses_that_compare_as_builtins_arrive_as_values(pool: SandboxPool) -> None:
    program = ("import collections, enum\nP = collections.namedtuple('P', 'x y')\nclass C(enum.IntEnum):\n    A = 3\n"
               "def f():\n    return P(1, 2), C.A, collections.OrderedDict(a=1)\n")
    assert judge(pool, program, "def check(candidate):\n    p, c, _ = candidate()\n    assert (p, c) == ((1, 2), 3)\n").passed
    # an OrderedDict compares by order: it stays the program's object
    assert judge(pool, program, "def check(candidate):\n    assert candidate()[2] == {'a': 1}\n").verdict == "unverified"


def test_numpy_scalars_arrive_as_numbers(pool: SandboxPool) -> None:
    pytest.importorskip("numpy")
    program = "import numpy as np\ndef f(x):\n    return np.float64(x) / 2, np.int64(x), np.bool_(x > 1)\n"
    assert judge(pool, program, "def check(candidate):\n    assert candidate(3) == (1.5, 3, True)\n").passed


# --- callables the test passes run in the judge ------------------------------------

APPLY = "def f(g, x):\n    return g(g(x))\n"


def test_callables_the_test_passes_are_called_back(pool: SandboxPool) -> None:
    test = """
    def check(candidate):
        assert candidate(lambda v: v + 1, 0) == 2
        assert candidate(str.upper, 'ab') == 'AB'
        assert candidate(lambda v: candidate(lambda w: w * 2, v), 1) == 16  # requests inside callbacks
    """
    assert judge(pool, APPLY, test).passed
    assert judge(pool, "def f(g, x):\n    return g(x)\n", test).verdict == "failed"


def test_a_callbacks_exception_reaches_the_sample(pool: SandboxPool) -> None:
    program = "def f(g, x):\n    try:\n        return g(x)\n    except ZeroDivisionError:\n        return 'caught'\n"
    assert judge(pool, program, "def check(candidate):\n    assert candidate(lambda v: 1 / v, 0) == 'caught'\n").passed


@pytest.mark.parametrize("arg, why", [
    ("open(__file__ if '__file__' in globals() else '/dev/null')", "TextIOWrapper"),
    ("eval", "never runs"),
    ("getattr", "never runs"),
    ("lambda: object()", "cannot cross"),
])
def test_what_cannot_cross_is_unverified(pool: SandboxPool, arg: str, why: str) -> None:
    program = "def f(x):\n    return x() if callable(x) else 1\n"
    o = judge(pool, program, f"def check(candidate):\n    assert candidate({arg}) == 1\n")
    assert o.verdict == "unverified" and why in o.detail, o


# --- the sample sees only the calls the test has made ---------------------------------

SNOOP = """
def f(x):
    import socket, sys
    needle = 'FUT' + 'URE'
    seen = []
    fr = sys._getframe().f_back  # everything the sandbox's code holds, from the caller up
    while fr is not None:
        for v in fr.f_locals.values():
            seen.append(repr(v))
            seen.append(repr(getattr(v, 'buf', '')))
            if isinstance(v, socket.socket):
                try:  # anything already waiting on the socket
                    seen.append(repr(v.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)))
                except (BlockingIOError, OSError):
                    pass
        fr = fr.f_back
    return needle in ''.join(seen)
"""


def test_the_sample_sees_only_the_calls_made_so_far(pool: SandboxPool) -> None:
    """Issue 10: predicted calls handed a chained test its own future inputs."""
    test = "def check(candidate):\n    assert candidate('now') is False\n    assert candidate('FUTURE') is True\n"
    o = judge(pool, SNOOP, test)
    assert (o.verdict, o.detail) == ("passed", "")


# --- control flow stays the test's -----------------------------------------------------

@pytest.mark.parametrize("exc", ["StopIteration", "StopAsyncIteration", "GeneratorExit", "KeyboardInterrupt",
                                 "SystemExit(0)"])
def test_control_flow_exceptions_of_the_candidate_fail_the_sample(pool: SandboxPool, exc: str) -> None:
    program = f"def f(x):\n    raise {exc}\n"
    loop = "def check(candidate):\n    for got, want in zip(map(candidate, [1, 2]), [1, 4]):\n        assert got == want\n"
    swallow = "def check(candidate):\n    try:\n        candidate(1)\n    except BaseException:\n        pass\n"
    for test in (loop, swallow):
        o = judge(pool, program, test)
        name = exc.split("(")[0]
        assert (o.verdict, o.detail.split(":")[0]) == ("failed", f"candidate raised {name}"), o


def test_a_candidates_assertion_error_is_labelled_as_the_candidates(pool: SandboxPool) -> None:
    o = judge(pool, "def f():\n    raise AssertionError('the dataset is wrong')\n",
              "def check(candidate):\n    assert candidate() == 1\n")
    assert o.verdict == "failed" and o.detail.startswith("candidate raised AssertionError: the dataset is wrong")


def test_builtin_exceptions_keep_their_type(pool: SandboxPool) -> None:
    test = ("def check(candidate):\n    try:\n        candidate('x')\n    except ValueError:\n        pass\n"
            "    else:\n        assert False\n")
    assert judge(pool, "def f(s):\n    return int(s)\n", test).passed


# --- verdict kinds from trusted sources only -------------------------------------------

def test_a_sample_cannot_claim_a_sandbox_error(pool: SandboxPool) -> None:
    program = "def f():\n    return 1\nimport os\nos.write(1, b'sandbox setup failed: nope')\nos._exit(70)\n"
    o = judge(pool, program, "def check(candidate):\n    assert candidate() == 1\n")
    assert o.verdict == "crashed" and "code 70" in o.detail
    assert pool.stats["sandbox_retries"] == 0


def test_strings_from_samples_are_made_safe(pool: SandboxPool) -> None:
    for program, test in (("def f():\n    raise ValueError('bad ' + chr(0xD800))\n", "assert candidate() == 1"),
                          ("def f():\n    return chr(0xDFFF) + '\\x00'\n", "x = candidate()\n    assert x == 'a', x")):
        o = judge(pool, program, f"def check(candidate):\n    {test}\n")
        assert o.verdict == "failed"
        o.detail.encode("utf-8")  # no lone surrogate left
        assert "\x00" not in o.detail
    assert safe_text("a" + chr(0xD800) + "b\x00") == "a?b\\x00"


def test_a_broken_dataset_test_is_unverified_not_the_samples_fault(pool: SandboxPool) -> None:
    assert judge(pool, "def f():\n    return 1\n", "def check(candidate):\n    assert candidate(\n").verdict == "unverified"
    assert judge(pool, "def f():\n    return 1\n", "x = 1\n").verdict == "unverified"
    assert judge(pool, "def f(:\n", "def check(candidate):\n    assert candidate() == 1\n").verdict == "failed"


# --- deadlines and decoding budgets ------------------------------------------------------

# Inside a sample: the socket to the judge (the sandbox has sent "loaded" already).
CONN = """
    import sys, struct, json, time
    fr = sys._getframe()
    while 'conn' not in fr.f_locals:
        fr = fr.f_back
    conn = fr.f_locals['conn']
    def raw(data):
        conn.sendall(struct.pack('!I', len(data)) + data)
"""


def hostile(body: str) -> str:
    return "def f(*a):\n" + textwrap.indent(textwrap.dedent(CONN) + textwrap.dedent(body), "    ")


def test_a_trickling_reply_times_out(pool: SandboxPool) -> None:
    """Issue 10: one byte every half second was never timed out, and hung the run."""
    body = "conn.sendall((1000).to_bytes(4, 'big'))\nwhile True:\n    conn.sendall(b' ')\n    time.sleep(0.2)\n"
    o = judge(pool, hostile(body), "def check(candidate):\n    assert candidate(1) == 1\n",
              tl=TimeLimits(3.0, 1.0, 3.0))
    assert o.verdict == "timeout"


def test_a_sample_that_stops_reading_cannot_hold_the_judge(pool: SandboxPool) -> None:
    body = "raw(json.dumps({'ok': 1}).encode())\nwhile True:\n    time.sleep(1)\n"
    test = "def check(candidate):\n    assert candidate(1) == 1\n    candidate('x' * (8 << 20))\n"
    assert judge(pool, hostile(body), test, tl=TimeLimits(3.0, 1.0, 3.0)).verdict == "timeout"


@pytest.mark.parametrize("reply, why", [
    # 150,000 ints that all hash to 0: building the set would take minutes
    ('{"ok": ["s", ' + ", ".join(f'["I", "{k * ((1 << 61) - 1):x}"]' for k in range(1, 150001)) + "]}",
     "share hashes"),
    ('{"ok": ["l", ' + ", ".join(['["s"]'] * 600000) + "]}", "item limit"),  # 600,000 empty sets
    ('{"ok": ' + '["l", ' * 5000 + "1" + "]" * 5000 + "}", "nested too deeply"),
])
def test_costly_replies_are_refused(pool: SandboxPool, reply: str, why: str) -> None:
    body = f"raw({reply!r}.encode())\ntime.sleep(3600)\n"
    o = judge(pool, hostile(body), "def check(candidate):\n    assert candidate(1) == 1\n", tl=TimeLimits(5.0, 5.0, 10.0))
    assert o.verdict == "failed" and why in o.detail, o


def test_an_oversized_message_is_refused_unread(pool: SandboxPool) -> None:
    body = "conn.sendall((64 << 20).to_bytes(4, 'big'))\ntime.sleep(3600)\n"
    o = judge(pool, hostile(body), "def check(candidate):\n    assert candidate(1) == 1\n")
    assert o.verdict == "failed" and "the limit is" in o.detail


def test_every_sample_gets_a_verdict_whatever_the_judge_hits(pool: SandboxPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A harness error on one sample is that sample's sandbox_error; the others keep theirs."""
    import pytest_codeeval.sandbox.pool as pool_module

    real = pool_module.judge_sample

    def flaky(worker, job, limits, measure=False):  # type: ignore[no-untyped-def]
        if "boom" in job.program:
            raise RuntimeError("judge bug")
        return real(worker, job, limits, measure)

    monkeypatch.setattr(pool_module, "judge_sample", flaky)
    jobs = [SampleJob(f"def f():\n    return {i}\n" + ("# boom\n" if i == 2 else ""), "f",
                      f"def check(candidate):\n    assert candidate() == {i}\n", time_limits=TL) for i in range(5)]
    out = pool.run(jobs, rerun_timeouts=False)
    assert [o.verdict for o in out] == ["passed", "passed", "sandbox_error", "passed", "passed"]
    assert "judge bug" in out[2].detail
