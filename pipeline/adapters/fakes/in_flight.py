"""The in-memory fake of the broker's in-flight view: InMemoryInFlight, the same contract
as the real adapter (pipeline.adapters.redis.in_flight) without its server; the contract
tests run both.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class InMemoryInFlight:
    """The fake: job ids put in and taken out by the test (or an in-process broker)."""

    def __init__(self, job_ids: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._ids = {j.lower() for j in job_ids}

    def hold(self, job_id: str) -> None:
        with self._lock:
            self._ids.add(job_id.lower())

    def release(self, job_id: str) -> None:
        with self._lock:
            self._ids.discard(job_id.lower())

    def job_ids(self) -> set[str]:
        with self._lock:
            return set(self._ids)

    def restore_orphans(self) -> int:
        """No worker dies in a fake broker: nothing to give back."""
        return 0
