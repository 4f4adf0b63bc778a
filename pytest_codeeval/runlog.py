"""One log file per run in the report dir: logs/<run id>.log.

Engine start-up, load times, resume counts, warnings and errors with their
tracebacks go there (every process of the run, xdist workers included,
appends to the same file); the console shows only what a person needs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

LOGGER = "pytest_codeeval"
FORMAT = "%(asctime)s %(process)d %(worker)s %(levelname)s %(name)s: %(message)s"


class _WorkerFilter(logging.Filter):
    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


def log_path(report_dir: Path, run_id: str) -> Path:
    return report_dir / "logs" / f"{run_id}.log"


def start_run_log(report_dir: Path, run_id: str, worker: str = "main") -> Path:
    """Attach a file handler for this run (once per process) and return its path."""
    path = log_path(report_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(LOGGER)
    for h in logger.handlers:
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path:
            return path
    handler = logging.FileHandler(path, encoding="utf-8")  # append: workers share the file
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_WorkerFilter(worker))
    handler.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.info("run %s log started (pid %d, %s)", run_id, os.getpid(), worker)
    return path


def stop_run_log() -> None:
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        if isinstance(h, logging.FileHandler):
            h.close()
            logger.removeHandler(h)


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER}.{name}" if name else LOGGER)


def log_failure(case_id: str, longrepr: Any) -> None:
    get_logger("cases").error("case %s failed:\n%s", case_id, longrepr)
