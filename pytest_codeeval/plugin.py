"""pytest-codeeval's hooks and fixtures (registered through the pytest11 entry point).

Module-level hooks only; the state lives in CodeevalSession under a StashKey.
Hooks run on xdist workers too: workers attach plain-data case results to
their test reports (pytest_runtest_makereport) and the controller collects
them (pytest_runtest_logreport) and writes the reports at session end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Generator

import pytest

from .plan import Case, case_marks, check_markexpr, plan_label, split_engine_key, summary_line
from .session import CodeevalSession, ensure_writable

SESSION_KEY = pytest.StashKey[CodeevalSession]()
RESULT_KEY = pytest.StashKey[dict[str, Any]]()
PATHS_KEY = pytest.StashKey[dict[str, Path]]()
# The run's store, gate options and log path (store.py, gating.py, runlog.py).
DURABLE_KEY = pytest.StashKey[dict[str, Any]]()
CASE_FIXTURE = "codeeval_case"
ENGINE_FIXTURE = "codeeval_engine"


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import addoptions

    addoptions(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    state = CodeevalSession(config)
    config.stash[SESSION_KEY] = state
    for line in state.marker_lines():
        config.addinivalue_line("markers", line)
    if not _is_worker(config):
        config.pluginmanager.register(ResultCollector(state), "codeeval-results")


def _state(config: pytest.Config) -> CodeevalSession:
    return config.stash[SESSION_KEY]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = _state(config)
    o = state.options
    lines = [f"codeeval: engine {o.engine}, preset {','.join(o.presets)}, report dir {o.report_dir}"]
    try:
        from .sandbox import probe_isolation, samples_cannot_import

        level = probe_isolation()
        why = samples_cannot_import(level)
        lines.append(f"codeeval sandbox: {level}" + (f" (WARNING: {why})" if why else ""))
    except ImportError:  # the sandbox is optional for model-free, non-code runs
        pass
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if CASE_FIXTURE not in metafunc.fixturenames:
        return
    cases = _state(metafunc.config).plan()
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
    state = _state(config)
    selected = [_case_of(item) for item in items if _case_of(item) is not None]
    if not selected and not state.cases:
        return
    if state.options.markexpr:
        check_markexpr(state.options.markexpr, state.catalog, _registered_markers(config))
    state.prepare([c for c in selected if c is not None], dry_run=config.option.collectonly or config.option.setupplan)
    if not config.option.collectonly and state.selected:
        _start_durable(config, state)


def _start_durable(config: pytest.Config, state: CodeevalSession) -> None:
    """Check the baseline and the report dir, open the store and the run
    log: bad input is a usage error here, before anything is written."""
    from .gating import gate_options
    from .runlog import start_run_log
    from .store import STORE_FILENAME, open_store

    o = state.options
    gate = gate_options(o)
    ensure_writable(state.report_dir)
    worker = config.workerinput if _is_worker(config) else {}  # type: ignore[attr-defined]
    run_id = worker.get("codeeval_run_id", state.run_id)
    log = start_run_log(state.report_dir, run_id, worker.get("workerid", "main"))
    store = open_store(o.store or state.report_dir / STORE_FILENAME, run_id)
    config.stash[DURABLE_KEY] = {"store": store, "gate": gate, "log": log}
    if not _is_worker(config) and not config.pluginmanager.has_plugin("codeeval-progress"):
        from .progress import ProgressPlugin

        config.pluginmanager.register(ProgressPlugin(len(state.selected), config), "codeeval-progress")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: workers log into the controller's run log."""
    node.workerinput["codeeval_run_id"] = _state(node.config).run_id


def _case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    case = callspec.params.get(CASE_FIXTURE)
    return case if isinstance(case, Case) else None


def _registered_markers(config: pytest.Config) -> list[str]:
    return [line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")]


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    state = _state(config)
    if not state.selected or _is_worker(config):
        return
    label = plan_label(state.options, state.catalog)
    line = summary_line(state.selected, state.options.presets)
    from .plan import write_plan

    ensure_writable(state.report_dir)
    path = state.report_dir / "plans" / f"{label}_{'+'.join(state.options.presets)}_plan.json"
    datasets = {c.dataset for c in state.selected} - set(state.unavailable)
    write_plan(path, state.selected, state.options, label, {d: len(state.items(d)) for d in datasets})
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(line)
        for name, why in state.unavailable.items():
            tr.write_line(f"codeeval: dataset {name} would fail to load: {why}", yellow=True)
        if config.option.verbose >= 0:
            tr.write_line(f"codeeval plan written to {path}")


# -- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="session")
def codeeval(request: pytest.FixtureRequest) -> CodeevalSession:
    """The run's state: catalog, options, datasets."""
    return _state(request.config)


@pytest.fixture(scope="session")
def codeeval_engine(request: pytest.FixtureRequest) -> Generator[Any, None, None]:
    """One loaded engine per model x preset, shut down before the next loads."""
    state = _state(request.config)
    durable = request.config.stash.get(DURABLE_KEY, None)
    model_name, _ = split_engine_key(request.param)
    store = durable.get("store") if durable else None
    if store is None or state.options.fresh or not store.has_model(model_name):
        # Nothing stored to reuse: load now, so a model that fails to load
        # marks its cases as errors (setup) with the reason.
        engine = state.open_engine(request.param)
    else:
        # The store holds generations of this model: it loads on the first
        # one the store lacks, so a rerun or a re-scoring may load none.
        from .store import DeferredEngine

        engine = DeferredEngine(lambda: state.open_engine(request.param), state.options.engine, request.param)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def codeeval_run(request: pytest.FixtureRequest, codeeval: CodeevalSession) -> Callable[[Case, Any], dict[str, Any]]:
    """Runs a case with its engine; the generation is timed by pytest-benchmark
    (one round) when it is active, and the result is kept for the report."""
    from .runner import run_case

    bench = _benchmark(request)
    timer = _benchmark_timer(bench)

    def run(case: Case, engine: Any) -> dict[str, Any]:
        if codeeval.options.ground_truth:
            _skip_without_references(codeeval, case)
        durable = request.config.stash.get(DURABLE_KEY, {})
        from .progress import case_progress

        result = run_case(codeeval.case_inputs(case), engine, timer=timer, store=durable.get("store"),
                          fresh=codeeval.options.fresh, progress=case_progress(request.config, case.id))
        request.node.stash[RESULT_KEY] = result
        _record_properties(request.node, result)
        if bench is not None:
            bench.extra_info.update({"score": result["score"], "metrics": result["metrics"], **result["performance"]})
        _judge(codeeval, result)
        _gate(durable.get("gate"), result)
        return result

    return run


def _benchmark(request: pytest.FixtureRequest) -> Any:
    # pytest-benchmark registers under its entry-point name "benchmark"; under
    # xdist it disables itself and the suite's own timings stand in.
    if not request.config.pluginmanager.hasplugin("benchmark") or _xdist_active(request.config):
        return None
    try:
        return request.getfixturevalue("benchmark")
    except pytest.FixtureLookupError:
        return None


def _xdist_active(config: pytest.Config) -> bool:
    return _is_worker(config) or bool(getattr(config.option, "numprocesses", None))


def _benchmark_timer(bench: Any) -> Callable[[Callable[[], Any]], Any]:
    if bench is None or getattr(bench, "disabled", False):
        return lambda fn: fn()
    return lambda fn: bench.pedantic(fn, rounds=1, iterations=1)


def _skip_without_references(state: CodeevalSession, case: Case) -> None:
    """Some public sets publish no reference answers (IFEval): a ground-truth
    check has nothing to run there, which is a skip with the reason, not a 0%."""
    items = state.items(case.dataset)
    if all(item.data.get("has_reference") is False for item in items):
        pytest.skip(f"{case.dataset} publishes no reference answers: nothing to check (its scorer's fidelity "
                    "is tested against the official implementation instead)")


def _judge(state: CodeevalSession, result: dict[str, Any]) -> None:
    """A case fails only on what the run was asked to check."""
    if state.options.ground_truth and result["score"] < 1.0:
        bad = [s for s in result["samples"] if not s["passed"]]
        shown = "; ".join(f"{s['task_id']}: {s['verdict']} {s['detail'][:120]}" for s in bad[:5])
        result["status"] = "failed"
        pytest.fail(
            f"ground truth: {result['dataset']} reference answers scored {100 * result['score']:.2f}% "
            f"({len(bad)} not passed): {shown}",
            pytrace=False,
        )


def _record_properties(node: pytest.Item, result: dict[str, Any]) -> None:
    """Each case's metrics as --junitxml properties (user_properties cross xdist)."""
    props = [("codeeval.score", result["score"]), ("codeeval.primary_metric", result["primary_metric"])]
    props += [(f"codeeval.metric.{k}", v) for k, v in result["metrics"].items()]
    perf = result["performance"]
    props += [(f"codeeval.{k}", perf[k]) for k in ("tokens_per_s", "completion_tokens", "generation_s", "load_s",
                                                   "peak_memory_bytes", "generated", "generations_reused") if k in perf]
    node.user_properties.extend(props)


def _gate(gate: Any, result: dict[str, Any]) -> None:
    if gate is None or not gate.active:
        return
    from .gating import check_case, failure_message

    regressions = check_case(result, gate)
    result["gating"] = regressions
    if regressions:
        result["status"] = "failed"
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
            if report.failed and result["status"] == "passed":
                result["status"] = "failed"
            report.codeeval_result = result
    return report


class ResultCollector:
    """Registered on the controller only: gathers case results from reports,
    whether they were made here or on an xdist worker."""

    def __init__(self, state: CodeevalSession) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        case = getattr(report, "codeeval_case", None)
        if case is None:
            return
        result = getattr(report, "codeeval_result", None)
        if result is not None:
            self.state.record(result)
        elif report.failed and case["id"] not in self.state.results:
            # Setup failed (the model did not load) or the call raised: an error case.
            self.state.record({
                "case_id": case["id"], "model": case["model"], "preset": case["preset"], "dataset": case["dataset"],
                "categories": case.get("categories", []), "status": "error", "n_items": 0, "score": None,
                "metrics": {}, "performance": {}, "error": _short_error(report),
            })


def _short_error(report: pytest.TestReport) -> str:
    text = report.longreprtext or ""
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    if lines:
        return " ".join(lines)[:500]
    return text.strip().splitlines()[-1][:500] if text.strip() else "error"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_worker(config) or SESSION_KEY not in config.stash:
        return
    state = _state(config)
    if not state.results:
        return
    from .report import write_reports
    from .report.manifest import build_manifest

    ensure_writable(state.report_dir)
    o = state.options
    results = [state.results[c.id] for c in state.selected if c.id in state.results] or list(state.results.values())
    config.stash[PATHS_KEY] = write_reports(
        state.report_dir, results, run_id=state.run_id, started_at=state.started_at, finished_at=time.time(),
        label=plan_label(o, state.catalog), presets=list(o.presets), engine=o.engine,
        options={"samples": o.samples, "n_samples": o.n_samples, "pass_k": list(o.pass_k),
                 "temperature": o.temperature, "top_p": o.top_p, "seed": o.seed,
                 "max_new_tokens": o.max_new_tokens, "completions": str(o.completions) if o.completions else None,
                 "baseline": str(o.baseline) if o.baseline else None, "fresh": o.fresh,
                 "store": str(config.stash[DURABLE_KEY]["store"].path) if DURABLE_KEY in config.stash else None},
        manifest=build_manifest(config.rootpath, _manifest_extra(state)),
    )


def _manifest_extra(state: CodeevalSession) -> dict[str, Any]:
    from .prompts import template_hash

    task_types = sorted({state.catalog.dataset(c.dataset).task_type for c in state.selected})
    extra: dict[str, Any] = {"prompt_templates": {t: template_hash(t) for t in task_types}}
    try:
        from .sandbox import probe_isolation, probe_protections

        extra["sandbox_isolation"] = probe_isolation()
        if "code" in task_types:  # what protected the machine and each sample (one server started to ask)
            extra["sandbox_protections"] = probe_protections()
    except ImportError:
        pass
    return extra


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    durable = config.stash.get(DURABLE_KEY, None)
    if state is not None and durable is not None and durable["gate"].active:
        from .gating import summary_lines

        lines = summary_lines(list(state.results.values()), durable["gate"].baseline_path)
        if lines:
            terminalreporter.section("codeeval gating")
            for i, line in enumerate(lines):
                terminalreporter.write_line(line, red=bool(i == 0 and "regressed" in line), bold=i == 0)
    paths = config.stash.get(PATHS_KEY, None)
    if durable is not None:
        terminalreporter.write_line(f"codeeval run log: {durable['log']}")
    if not paths:
        return
    terminalreporter.section("codeeval reports")
    for kind, path in paths.items():
        terminalreporter.write_line(f"{kind}: {path}")
