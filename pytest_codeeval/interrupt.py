"""How a run ends when it is told to stop, and what it leaves behind: no engine.

:class:`RunGuard` is registered in every process of a run and stays passive
until the run turns out to use the suite (cases selected, not a dry run):

* It points the engine supervision (``engines/lifecycle.py``) at the report
  dir and the run log, and first ends the engines that an earlier run of the
  same report dir left behind (killed with its supervisor), saying so on the
  terminal and in the run log, before any model loads.
* SIGTERM (what CI runners and batch schedulers send) is handled like
  Ctrl-C: a :class:`Terminated` (a KeyboardInterrupt) is raised where the
  run is, pytest stops, the session fixtures close the engine, and the
  controller writes the reports of the cases that finished; the store keeps
  everything that was committed. Later SIGTERMs are ignored so that the
  shutdown they asked for can finish (SIGKILL still ends it at once: the
  supervisor then ends the engines). The previous handler comes back at
  unconfigure.
* Under pytest-xdist the controller forwards a SIGTERM to its workers, whose
  guards do the same there; each worker's supervisor also watches the
  controller, so a SIGKILLed controller takes the workers' engines with it.
* A case whose engine died (``EngineDied``) is marked cut short on its report
  (``codeeval_cut_short``), which the controller puts into the case result.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Generator

import pytest

from .engines import lifecycle
from .engines.base import EngineDied
from .runlog import get_logger, start_run_log


class Terminated(KeyboardInterrupt):
    """SIGTERM: raised where Ctrl-C's KeyboardInterrupt would be, and handled the same way."""


class RunGuard:
    def __init__(self, config: pytest.Config, state: Any) -> None:
        self.config = config
        self.state = state
        self.active = False
        self.installed = False
        self.previous: Any = None
        self.received: float | None = None
        self.finishing = False
        self.workers: dict[str, int] = {}  # xdist controller: node id -> worker pid
        self.log = get_logger("lifecycle")

    # -- when the run uses the suite ------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        opt = self.config.option
        if self.state.selected and not (opt.collectonly or opt.setupplan):
            self.activate()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The xdist controller collects nothing: a worker's collection says whether the suite runs."""
        if self.active or self.config.option.collectonly:
            return
        try:
            wanted = {f"[{case.id}]" for case in self.state.plan()}
        except Exception:  # a plan error is reported by the workers
            return
        if any(i[i.rfind("["):] in wanted for i in ids if "[" in i):
            self.activate()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        popen = getattr(getattr(getattr(node, "gateway", None), "_io", None), "popen", None)
        if popen is not None:
            self.workers[node.gateway.id] = popen.pid

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self.workers.pop(getattr(getattr(node, "gateway", None), "id", ""), None)

    def activate(self) -> None:
        self.active = True
        config, state = self.config, self.state
        worker = getattr(config, "workerinput", None)
        run_id = worker.get("codeeval_run_id", state.run_id) if worker else state.run_id
        log_path = start_run_log(state.report_dir, run_id, worker.get("workerid", "main") if worker else "main")
        record_dir = lifecycle.record_dir_for(state.report_dir)
        # An xdist worker's engines also end with the controller (popen workers are its children).
        lifecycle.configure(record_dir, log_path, run_id, run_owner_pid=os.getppid() if worker else None)
        lines = lifecycle.sweep(record_dir)
        tr = config.pluginmanager.get_plugin("terminalreporter")
        for line in lines:
            self.log.warning(line)
            if tr is not None and not worker:
                tr.write_line(f"codeeval: {line}", yellow=True)
        self._install()

    # -- SIGTERM -------------------------------------------------------------
    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.log.warning("not in the main thread: SIGTERM keeps its default (the supervisor still ends engines)")
            return
        self.previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.installed = True

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # A signal handler: no logging or buffered writes here (the main
        # thread may be inside one); what happened is logged at session end.
        if self.received is not None:
            return  # the stop asked for is under way; SIGKILL ends it at once
        self.received = time.time()
        for pid in self.workers.values():
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        if not self.finishing:  # reports being written are left to finish
            raise Terminated("SIGTERM: stopping like Ctrl-C (finished cases are reported, engines shut down)")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.finishing = True
        if self.received is not None:
            self.log.warning("SIGTERM received at %s: the run stopped like on Ctrl-C%s", time.strftime(
                "%H:%M:%S", time.localtime(self.received)),
                f"; forwarded to xdist workers {sorted(self.workers.values())}" if self.workers else "")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)
            self.installed = False
        if self.active:
            lifecycle.shutdown()
            lifecycle.configure(None)  # a later engine of this process (pytester runs) records nowhere

    # -- a case whose engine died -----------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        if call.excinfo is not None and isinstance(call.excinfo.value, EngineDied):
            report.codeeval_cut_short = str(call.excinfo.value)
        return report


def register(config: pytest.Config, state: Any) -> None:
    """Called from pytest_configure in every process; the guard acts only once the suite runs."""
    config.pluginmanager.register(RunGuard(config, state), "codeeval-guard")
