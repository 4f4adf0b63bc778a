"""pytest-codeeval's hooks and fixtures (registered through the pytest11 entry point).

A table of short hooks, as pytest-benchmark's plugin is: the state lives in
one ``CodeevalSession`` under a StashKey, created only when the run uses the
suite (activation.py: otherwise the plugin stays silent in other people's
projects).  Hooks run on xdist workers too: workers attach plain-data case
results to their test reports (pytest_runtest_makereport) and the
controller's ResultCollector (collector.py) gathers them; reports are
written at session end on the controller only.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

import pytest

from .errors import CodeevalError
from .plan import Case, case_marks
from .results import CaseResult
from .session import CodeevalSession

SESSION_KEY = pytest.StashKey[CodeevalSession]()
RESULT_KEY = pytest.StashKey[CaseResult]()
# A usage error found while collecting (the suite woke up there): raised once collection is over.
PENDING_ERROR_KEY = pytest.StashKey[CodeevalError]()
CASE_FIXTURE = "codeeval_case"
ENGINE_FIXTURE = "codeeval_engine"


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import addoptions

    addoptions(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before any conftest: a path option written with a space must not have
    moved pytest's rootdir or configfile (rootdir_check.py)."""
    from .rootdir_check import check_rootdir

    check_rootdir(early_config)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from .activation import requested

    if requested(config):
        _activate(config)


def _activate(config: pytest.Config) -> CodeevalSession:
    """Create the run's state (once): parse options and the catalog, register markers and roles."""
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        return state
    state = CodeevalSession.from_config(config)
    config.stash[SESSION_KEY] = state
    for line in state.marker_lines():
        config.addinivalue_line("markers", line)
    if not _is_worker(config):
        from .collector import ResultCollector

        config.pluginmanager.register(ResultCollector(state.record, lambda cid: cid in state.results),
                                      "codeeval-results")
    from .interrupt import register as register_guard

    register_guard(config, state)  # SIGTERM like Ctrl-C, engine supervision, leftovers swept (once the suite runs)
    return state


def _state(config: pytest.Config) -> CodeevalSession | None:
    return config.stash.get(SESSION_KEY, None)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = _state(config)
    if state is None:
        return []
    from .report.manifest import sandbox_line

    o = state.options
    return [f"codeeval: engine {o.engine}, preset {','.join(o.presets)}, report dir {o.report_dir}",
            *sandbox_line()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if CASE_FIXTURE not in metafunc.fixturenames:
        return
    try:
        cases = _activate(metafunc.config).plan()
    except CodeevalError as e:
        # A usage error during collection would become a collection error;
        # it is raised as what it is once collection ends.
        metafunc.config.stash[PENDING_ERROR_KEY] = e
        cases = []
    # One parametrize call for the pair: the engine is indirect and
    # session-scoped, so pytest's reordering loads each model once and
    # tears it down before the next (see --setup-plan).
    metafunc.parametrize(
        [ENGINE_FIXTURE, CASE_FIXTURE],
        [pytest.param(c.engine_key, c, id=c.id, marks=case_marks(c)) for c in cases],
        indirect=[ENGINE_FIXTURE],
        scope="session",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    pending = config.stash.get(PENDING_ERROR_KEY, None)
    if pending is not None:
        raise pending
    state = _state(config)
    if state is None:
        return
    from .plan import check_markexpr, registered_markers

    if state.scale.shard is not None:  # --shard I/N: the other shards' cases go (shards.py)
        from .shards import apply_shard

        apply_shard(state, config, items, _case_of)
    selected = [c for c in map(_case_of, items) if c is not None]
    if not selected and not state.cases:
        return
    if state.options.markexpr:
        check_markexpr(state.options.markexpr, state.catalog, registered_markers(config))
    state.prepare(selected, dry_run=config.option.collectonly or config.option.setupplan)
    if state.selected:
        from .warning_filters import quiet_dependency_warnings

        quiet_dependency_warnings(config)
    if not config.option.collectonly and state.selected:
        state.start(config.workerinput if _is_worker(config) else {})  # type: ignore[attr-defined]
        if not _is_worker(config) and not config.pluginmanager.has_plugin("codeeval-progress"):
            from .progress import ProgressPlugin

            engine_of = {c.id: c.engine_key for c in state.selected}
            config.pluginmanager.register(ProgressPlugin(len(state.selected), config, engine_of), "codeeval-progress")


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None or not state.selected or _is_worker(session.config):
        return
    from .plan import write_dry_run_plan

    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = write_dry_run_plan(state)
    if tr is not None:
        for text, yellow in lines:
            if yellow or session.config.option.verbose >= 0 or not text.startswith("codeeval plan written"):
                tr.write_line(text, yellow=yellow)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: workers log into the controller's run log and store under its run id,
    and learn the controller's --dist mode (a worker's own reads "no")."""
    state = _state(node.config)
    if state is not None:
        node.workerinput["codeeval_run_id"] = state.run_id
    node.workerinput["codeeval_dist"] = node.config.getvalue("dist")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadgroup: group a model's cases by the plan (scheduling.py says why)."""
    state = _state(config)
    if state is None or config.getvalue("dist") != "loadgroup":
        return None
    from .scheduling import ModelScheduling

    return ModelScheduling(config, log, {c.id: c.engine_key for c in state.plan()})


def _case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get(CASE_FIXTURE) if callspec is not None else None
    return case if isinstance(case, Case) else None


# -- fixtures ---------------------------------------------------------------


def _active(config: pytest.Config) -> CodeevalSession:
    return _activate(config)


@pytest.fixture(scope="session")
def codeeval(request: pytest.FixtureRequest) -> CodeevalSession:
    """The run's state: catalog, options, datasets, store."""
    return _active(request.config)


@pytest.fixture(scope="session")
def codeeval_engine(request: pytest.FixtureRequest) -> Generator[Any, None, None]:
    """One engine per model x preset, behind the store, closed before the next loads.

    One submission per model: at setup, every request of the model's
    selected cases goes to the engine together (only those the store lacks;
    the model loads only then).  Each case then finds its share stored.
    When xdist may split a model's cases over workers (a --dist other than
    loadgroup), each case asks for its own instead."""
    state = _active(request.config)
    engine = state.caching_engine(request.param)
    try:
        if _one_submission(request.config):
            from .progress import call_progress, reporting

            with reporting(call_progress(request.config, request.param)):  # the engine reports its call's progress
                engine.generate(state.engine_requests(request.param))
        yield engine
    finally:
        engine.close()


def _one_submission(config: pytest.Config) -> bool:
    worker = getattr(config, "workerinput", None)
    dist = worker.get("codeeval_dist", "no") if worker is not None else getattr(config.option, "dist", "no")
    return (dist or "no") in ("no", "loadgroup")


@pytest.fixture
def codeeval_run(request: pytest.FixtureRequest, codeeval: CodeevalSession) -> Callable[[Case, Any], CaseResult]:
    """Runs a case with its engine.  With pytest-benchmark active (no xdist),
    the case is timed as one round: looking up its generations (made at
    engine setup, one submission per model) and scoring them; the case's
    share of the generation is in ``extra_info``."""
    from .runner import run_case

    bench = _benchmark(request)

    def run(case: Case, engine: Any) -> CaseResult:
        if codeeval.options.ground_truth:
            _skip_without_references(codeeval, case)
        inputs = codeeval.case_inputs(case)
        scorer = codeeval.stored_scorer(case.dataset)
        call = lambda: run_case(inputs, engine, scorer)  # noqa: E731
        from .progress import call_progress, reporting

        with reporting(call_progress(request.config, case.id)):  # a case's own engine call, if it makes one
            result: CaseResult = bench.pedantic(call, rounds=1, iterations=1) if bench is not None else call()
        request.node.stash[RESULT_KEY] = result
        _record_properties(request.node, result)
        if bench is not None:
            bench.extra_info.update({"score": result.score, "metrics": result.metrics,
                                     **result.performance.to_dict()})
        _judge(codeeval, result)
        _gate(codeeval, result)
        return result

    return run


def _benchmark(request: pytest.FixtureRequest) -> Any:
    # pytest-benchmark registers under its entry-point name "benchmark"; under
    # xdist it disables itself and the suite's own timings stand in.
    if not request.config.pluginmanager.hasplugin("benchmark") or _xdist_active(request.config):
        return None
    try:
        bench = request.getfixturevalue("benchmark")
    except pytest.FixtureLookupError:
        return None
    return None if getattr(bench, "disabled", False) else bench


def _xdist_workers(config: pytest.Config) -> int:
    worker = getattr(config, "workerinput", None)
    return int(worker.get("workercount", 1)) if worker is not None else 1


def _xdist_active(config: pytest.Config) -> bool:
    return _is_worker(config) or bool(getattr(config.option, "numprocesses", None))


def _skip_without_references(state: CodeevalSession, case: Case) -> None:
    """Some public sets publish no reference answers (IFEval): a ground-truth
    check has nothing to run there, which is a skip with the reason, not a 0%."""
    if all(item.data.get("has_reference") is False for item in state.items(case.dataset)):
        pytest.skip(f"{case.dataset} publishes no reference answers: nothing to check (its scorer's fidelity "
                    "is tested against the official implementation instead)")


def _judge(state: CodeevalSession, result: CaseResult) -> None:
    """A case fails only on what the run was asked to check."""
    if state.options.ground_truth and (result.score or 0.0) < 1.0:
        bad = [s for s in result.samples if not s.passed]
        shown = "; ".join(f"{s.task_id}: {s.verdict} {s.detail[:120]}" for s in bad[:5])
        result.status = "failed"
        pytest.fail(
            f"ground truth: {result.dataset} reference answers scored {100 * (result.score or 0.0):.2f}% "
            f"({len(bad)} not passed): {shown}",
            pytrace=False,
        )


def _record_properties(node: pytest.Item, result: CaseResult) -> None:
    """Each case's metrics as --junitxml properties (user_properties cross xdist)."""
    props: list[tuple[str, Any]] = [("codeeval.score", result.score), ("codeeval.primary_metric", result.primary_metric)]
    props += [(f"codeeval.metric.{k}", v) for k, v in result.metrics.items()]
    perf = result.performance.to_dict()
    props += [(f"codeeval.{k}", perf[k]) for k in ("tokens_per_s", "completion_tokens", "generation_s", "load_s",
                                                   "peak_memory_bytes", "generated", "generations_reused")]
    node.user_properties.extend(props)


def _gate(state: CodeevalSession, result: CaseResult) -> None:
    gate = state.durable.gate if state.durable is not None else None
    if gate is None or not gate.active:
        return
    from .gating import apply, failure_message

    # xdist workers without GPUs of their own generate on the same CPU at the same time
    shared = _xdist_workers(state.config) > 1 and not result.performance.devices
    regressions = apply(result, gate, shared)  # result.gating keeps every finding, notes included
    if regressions:
        result.status = "failed"
        pytest.fail(failure_message(regressions), pytrace=False)


# -- results across workers -------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    case = _case_of(item)
    if case is not None:
        report.codeeval_case = case.to_dict()
        result = item.stash.get(RESULT_KEY, None)
        if result is not None and report.when == "call":
            if report.failed and result.status == "passed":
                result.status = "failed"
            report.codeeval_result = result.to_dict()
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state is None or _is_worker(session.config) or not state.results:
        return
    from .report.run import write_run_reports

    state.report_paths = write_run_reports(state)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    if state is None or state.durable is None:
        return
    if state.durable.gate.active:
        from .gating import summary_lines

        lines = summary_lines(list(state.results.values()), state.durable.gate.baseline_path)
        if lines:
            terminalreporter.section("codeeval gating")
            for i, line in enumerate(lines):
                terminalreporter.write_line(line, red=bool(i == 0 and "regressed" in line), bold=i == 0)
    terminalreporter.write_line(f"codeeval run log: {state.durable.log}")
    if state.report_paths:
        terminalreporter.section("codeeval reports")
        for kind, path in state.report_paths.items():
            terminalreporter.write_line(f"{kind}: {path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = _state(config)
    if state is not None and state.durable is not None:
        state.durable.store.close()
