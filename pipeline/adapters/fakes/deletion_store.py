"""InMemoryRepoDeletionStore: a behaving fake of PgRepoDeletionStore.

It works on an :class:`InMemoryJobStore`: a repository is known by its jobs (as the real
one is created with its first job), ``begin`` marks it in the job store (whose
``create`` then refuses the repository's jobs, as PgJobStore's does), the "jobs" stage
removes its jobs and the "repository" stage its mark. The fake holds no chunk, file or
content rows (those of the fakes live in other fakes), so those stages find none.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.deletions import (
    STAGES,
    DeletionStatus,
    RepoDeletion,
    counter_of,
    new_deletion_id,
    parse_deletion_id,
)
from pipeline.errors import ConflictError, NotFoundError
from pipeline.jobs import Job
from pipeline.models import RepoRef
from pipeline.statements import sql


class InMemoryRepoDeletionStore:
    def __init__(self, jobs: InMemoryJobStore, *, clock: Callable[[], float] = time.time) -> None:
        self._jobs = jobs
        self._deletions: dict[str, RepoDeletion] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def close(self) -> None:
        """Nothing to release; here for parity with the real store."""

    def begin(self, repo: RepoRef) -> tuple[RepoDeletion, bool]:
        sql.check_repo(repo)

        def check(jobs: list[Job]) -> None:
            if not jobs:
                raise NotFoundError(f"repository {repo.name!r} not found")
            active = [j for j in jobs if not j.status.terminal]
            if active:
                job = min(active, key=lambda j: j.created_at)
                raise ConflictError(
                    f"repository {repo.name!r} has job {job.job_id} {job.status};"
                    " cancel it or wait for it to end, then delete"
                )

        with self._lock:
            fresh = new_deletion_id()
            marked = self._jobs.mark_deleting(repo, fresh, check)
            if marked != fresh:
                pending = self._deletions[marked]
                if pending.status is not DeletionStatus.FAILED:
                    return pending, False
                again = self._change(
                    marked,
                    status=DeletionStatus.QUEUED,
                    stage="graph",
                    error=None,
                    finished_at=None,
                )
                return again, True
            deletion = RepoDeletion(fresh, repo, DeletionStatus.QUEUED, created_at=self._clock())
            self._deletions[fresh] = deletion
            self._touched[fresh] = self._clock()
            return deletion, True

    def get(self, deletion_id: str, tenant: str | None = None) -> RepoDeletion | None:
        canonical = parse_deletion_id(deletion_id) or ""
        with self._lock:
            found = self._deletions.get(canonical)
        if found is None or (tenant is not None and found.repo.tenant != tenant):
            return None
        return found

    def unfinished(self, idle_s: float, limit: int) -> list[str]:
        cutoff = self._clock() - idle_s
        with self._lock:
            ids = [
                k
                for k, d in self._deletions.items()
                if not d.status.terminal and self._touched[k] < cutoff
            ]
            chosen = sorted(ids, key=lambda k: self._touched[k])[:limit]
            for k in chosen:  # claimed: sent again at most once per idle_s
                self._touched[k] = self._clock()
        return chosen

    def start(self, deletion_id: str) -> RepoDeletion | None:
        canonical = parse_deletion_id(deletion_id) or ""
        with self._lock:
            found = self._deletions.get(canonical)
            if found is None or found.status.terminal:
                return None
            return self._change(canonical, status=DeletionStatus.RUNNING)

    def set_stage(self, deletion_id: str, stage: str) -> None:
        with self._lock:
            found = self._deletions.get(deletion_id)
            if found is not None and found.status is DeletionStatus.RUNNING:
                self._change(deletion_id, stage=stage)

    def count(self, deletion_id: str, counter: str, n: int) -> None:
        with self._lock:
            self._add(deletion_id, counter, n)

    def erase(self, deletion_id: str, stage: str, limit: int) -> int:
        if stage not in STAGES or stage == "graph":
            raise ValueError(f"no rows to erase in stage {stage!r}")
        if limit < 1:
            raise ValueError(f"limit {limit} < 1")
        with self._lock:
            found = self._deletions.get(deletion_id)
            if found is None:
                return 0
            removed = 0
            if stage == "jobs":
                removed = self._jobs.drop_jobs(found.repo, limit)
            elif stage == "repository":
                removed = int(self._jobs.unmark_deleting(found.repo, deletion_id))
            self._add(deletion_id, counter_of(stage), removed)
            return removed

    def finish(self, deletion_id: str, *, error: str | None = None) -> None:
        status = DeletionStatus.DONE if error is None else DeletionStatus.FAILED
        with self._lock:
            found = self._deletions.get(deletion_id)
            if found is None or found.status.terminal:
                return
            self._change(
                deletion_id,
                status=status,
                stage=str(status),
                error=error,
                finished_at=self._clock(),
            )

    def _add(self, deletion_id: str, counter: str, n: int) -> None:
        found = self._deletions.get(deletion_id)
        if found is None or not n:
            return
        counters = dict(found.counters)
        counters[counter] = counters.get(counter, 0) + n
        self._change(deletion_id, counters=counters)

    def _change(self, deletion_id: str, **changes: object) -> RepoDeletion:
        updated = dataclasses.replace(self._deletions[deletion_id], **changes)  # type: ignore[arg-type]
        self._deletions[deletion_id] = updated
        self._touched[deletion_id] = self._clock()
        return updated
