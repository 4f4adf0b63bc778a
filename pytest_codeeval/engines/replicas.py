"""Several OpenAI-compatible servers serving one model: which one gets the
next request, and what happens when one fails.

Each request goes to the live replica with the fewest requests in flight
(ties: the one that has served fewest).  A replica whose request still fails
after its retries is taken out, and that request (and every later one) goes
to the others; only when none is left does the call fail.  The counts say
which replicas served, for the report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Replica:
    url: str
    in_flight: int = 0
    served: int = 0
    failed: str = ""  # why it was taken out ("" while it is live)


@dataclass
class Replicas:
    replicas: list[Replica]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, urls: list[str]) -> "Replicas":
        return cls([Replica(u) for u in dict.fromkeys(urls)])

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if not r.failed]

    def acquire(self) -> Replica | None:
        """The least busy live replica, counted as busy with one more request (None: all failed)."""
        with self._lock:
            live = self.live()
            if not live:
                return None
            best = min(live, key=lambda r: (r.in_flight, r.served))
            best.in_flight += 1
            return best

    def release(self, replica: Replica, served: bool) -> None:
        with self._lock:
            replica.in_flight -= 1
            replica.served += int(served)

    def fail(self, replica: Replica, why: str) -> None:
        with self._lock:
            replica.failed = replica.failed or why

    def summary(self) -> dict[str, dict[str, object]]:
        """Per replica: requests served, and why it was taken out (if it was)."""
        return {r.url: {"served": r.served, **({"failed": r.failed} if r.failed else {})} for r in self.replicas}


__all__ = ["Replica", "Replicas"]
