"""The xdist scheduler for ``--dist loadgroup``: a model's cases on one worker,
one model per worker at a time.

pytest-xdist's own LoadGroupScheduling finds a test's group in a suffix it
appends to the test's node id.  With pytest 9.2 that no longer takes effect
(node ids are structured; pytest-xdist issue #1386, open): the groups are
silently ignored and a model's cases are spread over workers, each loading
the model.  This scheduler groups by the plan instead: the controller builds
the same plan as every worker (catalog + options), so a case id names its
model x preset.  Tests that are not cases of the suite each form their own
unit, as with loadgroup.

It also hands a worker its next model only when it is down to the one case
xdist holds back (a worker runs a test only once it knows the next one), not
two ahead as LoadScopeScheduling does: a queued model never waits behind a
busy worker while another worker is idle.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler.loadscope import LoadScopeScheduling


def case_id_of(nodeid: str) -> str | None:
    """The parametrization id of a node id (``...::test_codeeval[ID]``)."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    return nodeid[nodeid.rindex("[") + 1:-1]


class ModelScheduling(LoadScopeScheduling):
    def __init__(self, config: Any, log: Any = None, groups: dict[str, str] | None = None) -> None:
        super().__init__(config, log)
        self.groups = dict(groups or {})  # case id -> engine key (model@preset)

    def _split_scope(self, nodeid: str) -> str:
        case = case_id_of(nodeid)
        group = self.groups.get(case) if case is not None else None
        return f"codeeval:{group}" if group is not None else nodeid

    def _reschedule(self, node: Any) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        # 1: the case xdist holds back until it knows the next one
        if self._pending_of(self.assigned_work[node]) > 1:
            return
        self._assign_work_unit(node)


__all__ = ["ModelScheduling", "case_id_of"]
