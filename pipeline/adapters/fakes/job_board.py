"""The in-memory fake of the job board: InMemoryJobBoard, the same contract as the real
adapter (pipeline.adapters.redis.job_board) without its server; the contract tests run
both.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.jobs import JobError, StoreWait


class InMemoryJobBoard:
    """The fake: the same semantics in one process, thread-safe."""

    def __init__(self, *, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[str, int]] = {}
        self._sets: dict[str, dict[str, set[str]]] = {}
        self._errors: dict[str, list[JobError]] = {}
        self._throttle: dict[tuple[str, str], float] = {}
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}  # (holder, until)
        self._cancelled: set[str] = set()
        self._waits: dict[str, dict[str, StoreWait]] = {}
        self._clock = clock

    def set_counters(self, job_id: str, values: Mapping[str, int]) -> None:
        with self._lock:
            self._counters.setdefault(job_id, {}).update({k: int(v) for k, v in values.items()})

    def mark(
        self,
        job_id: str,
        counter: str,
        members: Sequence[str],
        deltas: Mapping[str, Mapping[str, int]] | None = None,
    ) -> list[str]:
        if not members:
            return []
        with self._lock:
            marked = self._sets.setdefault(job_id, {}).setdefault(counter, set())
            counters = self._counters.setdefault(job_id, {})
            added = []
            for member in members:
                if member not in marked:
                    marked.add(member)
                    added.append(member)
                    for name, delta in (deltas or {}).get(member, {}).items():
                        counters[name] = counters.get(name, 0) + int(delta)
            return added

    def counters(self, job_id: str) -> dict[str, int]:
        with self._lock:
            counters = dict(self._counters.get(job_id, {}))
            counters.update({k: len(v) for k, v in self._sets.get(job_id, {}).items()})
            return counters

    def push_error(self, job_id: str, error: JobError) -> None:
        with self._lock:
            self._errors.setdefault(job_id, []).append(error)

    def take_errors(self, job_id: str) -> list[JobError]:
        with self._lock:
            return self._errors.pop(job_id, [])

    def throttle(self, job_id: str, marker: str, interval_s: float) -> bool:
        now = self._clock()
        with self._lock:
            if self._throttle.get((job_id, marker), float("-inf")) > now:
                return False
            self._throttle[(job_id, marker)] = now + interval_s
            return True

    def lease(self, job_id: str, marker: str, holder: str, ttl_s: float) -> bool:
        now = self._clock()
        with self._lock:
            held = self._leases.get((job_id, marker))
            if held is not None and held[1] > now and held[0] != holder:
                return False
            self._leases[(job_id, marker)] = (holder, now + ttl_s)
            return True

    def release_lease(self, job_id: str, marker: str, holder: str) -> None:
        with self._lock:
            held = self._leases.get((job_id, marker))
            if held is not None and held[0] == holder:
                del self._leases[(job_id, marker)]

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def members(self, job_id: str, counter: str) -> set[str]:
        with self._lock:
            return set(self._sets.get(job_id, {}).get(counter, set()))

    def among(self, job_id: str, counter: str, candidates: Sequence[str]) -> set[str]:
        with self._lock:
            return set(candidates) & self._sets.get(job_id, {}).get(counter, set())

    def clear(self, job_id: str) -> None:
        with self._lock:
            self._errors.pop(job_id, None)
            self._waits.pop(job_id, None)

    def wait_on(self, job_id: str, wait: StoreWait) -> None:
        with self._lock:
            self._waits.setdefault(job_id, {})[wait.store] = wait

    def waits(self, job_id: str) -> list[StoreWait]:
        with self._lock:
            return sorted(self._waits.get(job_id, {}).values(), key=lambda w: w.store)
