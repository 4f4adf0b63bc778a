"""In-call progress (progress.CallProgress): the figures, the line, and how it
is written on a terminal and elsewhere. The end-to-end runs that capture the
lines are in test_lifecycle.py (fake engine) and test_lifecycle_vllm.py (the
real engine)."""

from __future__ import annotations

import io
import threading
import time

import pytest

from lifecycle_helpers import PROGRESS_RE
from pytest_codeeval.progress import CallProgress, current_sink, reporting


def _started(total: int, **kw: object) -> CallProgress:
    p = CallProgress("m-ds", interval_s=0, **kw)  # type: ignore[arg-type]
    p.start(total)
    return p


def test_eta_is_the_time_per_finished_prompt_times_the_prompts_left() -> None:
    p = _started(10)
    t0 = p.t0
    assert p.figures(t0 + 5)["eta_s"] is None  # nothing finished yet: no estimate
    assert "ETA --" in p.line(t0 + 5)
    p.advance(2, tokens=300)
    f = p.figures(t0 + 10)
    assert f["eta_s"] == pytest.approx(40.0)  # 5 s a prompt, 8 left
    assert f["tokens_per_s"] == pytest.approx(30.0)
    m = PROGRESS_RE.search(p.line(t0 + 10))
    assert m and m.groups() == ("m-ds", "2", "10", "20", "30.0", "10s", "40s")


def test_tokens_of_running_prompts_count_before_any_prompt_finishes() -> None:
    p = CallProgress("m-ds", interval_s=0)
    p.start(4, live_tokens=lambda: [40, 40, 40])
    assert p.figures(p.t0 + 2)["tokens_per_s"] == pytest.approx(60.0)
    p.advance(1, tokens=50)
    assert p.figures(p.t0 + 2)["tokens"] == 170


def test_answers_running_into_the_token_cap_bound_the_eta() -> None:
    """Every request decoding: the least advanced one reaches the 512-token cap at the pace of the
    most advanced one, whatever the rate of finished prompts says (none yet, or one in 30 s)."""
    p = CallProgress("m-ds", interval_s=0)
    running = [100, 100, 100, 100]
    p.start(4, live_tokens=lambda: running, max_tokens=512)
    assert p.figures(p.t0 + 10)["eta_s"] == pytest.approx(41.2)
    running = [300, 300, 300]
    p.advance(1, tokens=20)  # a short answer: the prompt rate says 3 x 30 s = 90 s
    assert p.figures(p.t0 + 30)["eta_s"] == pytest.approx(21.2)
    running = [300, 300, 0]  # one request not decoding yet (waiting): no bound from the cap
    assert p.figures(p.t0 + 30)["eta_s"] == pytest.approx(90.0)


def test_a_failing_peek_into_the_engine_is_dropped_not_raised() -> None:
    def broken() -> list[int]:
        raise RuntimeError("engine internals moved")

    p = CallProgress("m-ds", interval_s=0)
    p.start(4, live_tokens=broken)
    assert p.figures()["tokens"] == 0 and p.live_sources == []


def test_final_line_says_done_or_stopped() -> None:
    p = _started(3)
    p.advance(3, tokens=30)
    p.finish()
    assert "generation 3/3 prompts (100%)" in p.line() and "done in" in p.line()
    q = _started(3)
    q.advance(1)
    q.finish()
    assert "stopped after" in q.line()


def test_no_terminal_gets_a_line_every_interval_and_the_final_one() -> None:
    out = io.StringIO()
    p = CallProgress("m-ds", out, tty=False, interval_s=0.2)
    p.start(5)
    for _ in range(5):
        time.sleep(0.15)
        p.advance(1, tokens=10)
    p.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and "\r" not in out.getvalue()
    assert all(PROGRESS_RE.search(x) for x in lines[:-1])
    assert "generation 5/5 prompts (100%)" in lines[-1] and "done in" in lines[-1]


def test_a_terminal_gets_one_line_rewritten_in_place() -> None:
    out = io.StringIO()
    p = CallProgress("m-ds", out, tty=True, interval_s=5, refresh_s=0.1)
    p.start(3)
    time.sleep(1.4)  # calls under a second stay silent, then a refresh every 0.1 s
    p.advance(3, tokens=30)
    p.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, ended once
    assert text.count("\r") >= 3 and "\x1b[K" in text
    assert "generation 3/3 prompts (100%)" in text.rsplit("\r", 1)[1]


def test_short_calls_stay_silent_on_the_terminal() -> None:
    out = io.StringIO()
    p = CallProgress("m-ds", out, tty=False, interval_s=5)
    p.start(2)
    p.advance(2)
    p.finish()
    assert out.getvalue() == ""


def test_advance_from_many_threads_loses_nothing() -> None:
    p = _started(8000)
    threads = [threading.Thread(target=lambda: [p.advance(1, tokens=2) for _ in range(1000)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (p.done, p.tokens) == (8000, 16000)


def test_the_sink_is_found_through_the_context_and_finished_on_an_error() -> None:
    sink = CallProgress("m-ds", interval_s=0)
    assert current_sink() is None
    with pytest.raises(KeyboardInterrupt):
        with reporting(sink):
            assert current_sink() is sink
            sink.start(4)
            raise KeyboardInterrupt
    assert current_sink() is None and sink.ended is not None


def test_the_server_engine_reports_completed_requests() -> None:
    from test_server_engine import MODEL, Stub, completion, options

    from pytest_codeeval.engines.base import Request, SamplingConfig
    from pytest_codeeval.engines.server import ServerEngine
    from pytest_codeeval.items import Item, Prompt

    def slow(path: str, body: dict, seen: int) -> tuple[int, object, dict[str, str]]:
        if path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": "org/stub-model"}]}, {}
        time.sleep(0.3)
        return 200, completion(body), {}

    out = io.StringIO()
    sink = CallProgress("stub-ds", out, tty=False, interval_s=0.25)
    prompts = [Prompt(f"t/{i}", messages=({"role": "user", "content": str(i)},)) for i in range(6)]
    with Stub(slow) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url, concurrency=2))
        engine.load()
        with reporting(sink):
            engine.generate([Request(p, Item(id=p.item_id, task_type="code", prompt="", reference=""),
                                     SamplingConfig(temperature=0.0)) for p in prompts])
    assert (sink.done, sink.total, sink.tokens) == (6, 6, 18)
    counts = [int(m.group(2)) for m in map(PROGRESS_RE.search, out.getvalue().splitlines()) if m]
    assert counts and counts == sorted(counts) and counts[-1] < 6  # lines while it ran
    assert "generation 6/6 prompts (100%)" in out.getvalue().splitlines()[-1]


def test_data_parallel_replicas_report_their_shares_of_one_call() -> None:
    """Replicas generate in pool threads (no context of the caller): each reports through a part of
    the call's sink, which counts the whole call once."""
    from pytest_codeeval.engines.base import Engine, Request, SamplingConfig
    from pytest_codeeval.engines.parallel import DataParallelEngine
    from pytest_codeeval.items import Generation, Item, Prompt

    class Replica(Engine):
        kind = "fake"

        def generate(self, requests):  # type: ignore[no-untyped-def]
            sink = current_sink()
            assert sink is not None
            sink.start(len(requests), live_tokens=lambda: [5])
            for _ in requests:
                sink.advance(1, tokens=10)
            sink.finish()
            return [[Generation(r.prompt.item_id, 0, "x", 1, 10, "stop")] for r in requests]

    whole = CallProgress("m@p", interval_s=0)
    reqs = [Request(Prompt(f"t/{i}", text="x"), Item(id=f"t/{i}", task_type="code", prompt="", reference=""),
                    SamplingConfig()) for i in range(7)]
    with reporting(whole):
        DataParallelEngine([Replica("a"), Replica("b")]).generate(reqs)
    assert (whole.total, whole.done, whole.tokens) == (7, 7, 70) and whole.ended is not None
    assert len(whole.live_sources) == 2


def test_the_run_eta_knows_an_engines_first_case_carries_its_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """One call per engine: the first case of an engine takes its load and all of
    its generation, the others only score. Averaging over cases said "ETA 10m30s"
    after the first of 6 cases of a run that ended 2 minutes later."""
    from pytest_codeeval import progress

    now = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: now[0])
    engine_of = {f"a-{d}": "a@balanced" for d in "xyz"} | {f"b-{d}": "b@balanced" for d in "xyz"}
    run = progress.RunProgress(6, None, engine_of=engine_of)
    now[0] += 100.0  # engine a: load + every generation
    run.case_finished({"case_id": "a-x"})
    assert run.eta() == pytest.approx(100.0)  # engine b still to come; nothing known of the rest yet
    now[0] += 2.0
    run.case_finished({"case_id": "a-y"})
    assert run.eta() == pytest.approx(100.0 + 2.0 * 3)  # b's first case, then 3 cases at 2 s
    now[0] += 2.0
    run.case_finished({"case_id": "a-z"})
    now[0] += 90.0
    run.case_finished({"case_id": "b-x"})
    assert run.eta() == pytest.approx(4.0)  # only b's two quick cases are left
    one = progress.RunProgress(3, None, engine_of={"a-x": "a", "a-y": "a", "a-z": "a"})
    one.case_finished({"case_id": "a-x"})
    assert one.eta() is None  # the rest only score, and none has been timed yet: no guess
    plain = progress.RunProgress(4, None)  # no engines known: the time per case
    now[0] += 10.0
    plain.case_finished({"case_id": "c"})
    assert plain.eta() == pytest.approx(30.0)
