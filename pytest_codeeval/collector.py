"""The result collector: registered on the controller only (as pytest-xdist
registers its DSession only in distribution mode).

Case results travel on test reports as plain data, whether the case ran here
or on an xdist worker (``pytest_runtest_makereport`` attaches them); the
collector rebuilds the typed results from the reports it sees.  A case
whose setup failed (its model did not load) or that raised becomes an error
result with the reason.
"""

from __future__ import annotations

from typing import Any, Callable

from .results import CaseResult


class ResultCollector:
    def __init__(self, record: Callable[[CaseResult], None], known: Callable[[str], bool]) -> None:
        """``record`` keeps a result; ``known`` says whether a case already has one."""
        self.record = record
        self.known = known

    def pytest_runtest_logreport(self, report: Any) -> None:
        case = getattr(report, "codeeval_case", None)
        if case is None:
            return
        result = getattr(report, "codeeval_result", None)
        if result is not None:
            self.record(CaseResult.from_dict(result))
        elif report.failed and not self.known(case["id"]):
            # codeeval_cut_short: its engine died (set by interrupt.py's RunGuard)
            self.record(CaseResult.errored(case, short_error(report), getattr(report, "codeeval_cut_short", None)))


def short_error(report: Any) -> str:
    """The exception lines (``E ...``) of a failure, or its last line."""
    text = getattr(report, "longreprtext", "") or ""
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    if lines:
        return " ".join(lines)[:500]
    return text.strip().splitlines()[-1][:500] if text.strip() else "error"


__all__ = ["ResultCollector", "short_error"]
