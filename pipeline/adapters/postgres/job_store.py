"""PgJobStore: the JobStore port on the ``jobs`` table, and the pool the job, snapshot
and token stores open (after checking that the schema they need was migrated).

``create`` runs in one transaction: the tenant and repository rows are inserted if
absent, then the job with ``INSERT ... ON CONFLICT DO NOTHING``. The unique indexes on
(tenant, idempotency key) and on (repository, commit asked for) of live jobs make two
concurrent creates of the same job end with one row: the loser's INSERT waits for the
winner's commit, does nothing, and looks the winner's job up. Every other change is one
``UPDATE`` guarded by the job's status, so the first caller to finish a job wins. The
statement texts live in ``pipeline.statements.job_sql``, the shared checks in
``pipeline.statements.job_rows``.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import psycopg

from pipeline.adapters.postgres.base import (
    PgStore,
    execute,
    open_checked_pool,
)
from pipeline.adapters.postgres.connect import STORE
from pipeline.deletions import deleting
from pipeline.errors import InvalidInputError, StoreUnavailableError
from pipeline.jobs import Job, JobError, JobRequest, JobStatus, WebhookDelivery
from pipeline.statements import deletion_sql, job_rows, job_sql, sql

_CREATE_ATTEMPTS = 3


class PgJobStore(PgStore):
    """Jobs of every tenant. ``pool_size`` bounds the connections; ``timeout_s`` bounds
    connecting and waiting for a pooled connection. Call :meth:`close` when done.

    Job ids are UUIDs (returned in canonical form); an id that is not one is unknown to
    every reader and to ``start``/``finish`` (False), and refused by ``create``."""

    def __init__(self, dsn: str, *, pool_size: int = 4, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            # The newest column its statements use (migration 0014; they apply in order):
            # an API or worker started before `quarry migrate` says so, not "bad input".
            table="repositories",
            column="deletion_id",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-job-store",
        )

    def create(self, request: JobRequest, *, job_id: str, commit: str | None) -> tuple[Job, bool]:
        job_id, commit = job_rows.check_request(request, job_id, commit)
        repo = request.repo
        with self._transaction() as conn:
            execute(conn, job_sql.ensure_tenant(repo.tenant))
            execute(conn, sql.ensure_repository(repo, request.default_ref or request.ref_name))
            # FOR KEY SHARE: a deletion of the repository (FOR UPDATE) and this job wait for
            # each other, and the second sees the first (PgRepoDeletionStore.begin).
            locked = deletion_sql.lock_repository(repo, for_job=True)
            found = execute(conn, locked).fetchone()
            if found is None:  # pragma: no cover - inserted or already there
                raise sql.unknown_repository(repo)
            if found[1] is not None:
                raise deleting(repo, str(found[1]))
            repository_id = int(found[0])
            for _ in range(_CREATE_ATTEMPTS):
                existing = self._existing(conn, request, job_id, repository_id, commit)
                if existing is not None:
                    return existing, False
                insert = job_sql.insert_job(request, job_id, repository_id, commit)
                if execute(conn, insert).fetchone() is not None:
                    return self._one(conn, job_sql.job_by_id(job_id, None)), True
                # A concurrent create won (it committed while the INSERT waited): look again.
        raise StoreUnavailableError(STORE, f"job {job_id} kept conflicting; try again")

    def discard(self, job_id: str) -> None:
        """Delete the job if it is still queued and never started; else nothing."""
        self._update(job_id, job_sql.discard_job)

    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        canonical = job_rows.parse_job_id(job_id)
        if canonical is None:
            return None
        with self._connection() as conn:
            row = execute(conn, job_sql.job_by_id(canonical, tenant)).fetchone()
        return None if row is None else job_rows.job_from_row(row)

    def list(
        self,
        tenant: str,
        repo: str | None = None,
        limit: int = 50,
        *,
        statuses: Collection[JobStatus] = (),
        offset: int = 0,
    ) -> builtins.list[Job]:
        wanted = sorted(JobStatus(s).value for s in statuses)
        query = job_sql.list_jobs(tenant, repo, limit, statuses=wanted, offset=offset)
        with self._connection() as conn:
            rows = execute(conn, query).fetchall()
        return [job_rows.job_from_row(row) for row in rows]

    def idle(self, idle_s: float, limit: int = 100) -> builtins.list[Job]:
        with self._connection() as conn:
            rows = execute(conn, job_sql.idle_jobs(idle_s, limit)).fetchall()
        return [job_rows.job_from_row(row) for row in rows]

    def start(self, job_id: str, stage: str, commit: str | None = None) -> bool:
        job_rows.check_stage(stage)
        if commit:
            job_rows.check_commit(commit)
        return self._update(job_id, lambda jid: job_sql.start_job(jid, stage, commit))

    def set_stage(self, job_id: str, stage: str) -> None:
        job_rows.check_stage(stage)
        self._update(job_id, lambda jid: job_sql.set_stage(jid, stage))

    def save_progress(
        self, job_id: str, counters: Mapping[str, int], errors: Sequence[JobError] = ()
    ) -> None:
        counted = job_rows.check_counters(counters)
        appended = [job_rows.error_json(e) for e in job_rows.check_errors(errors)]
        self._update(
            job_id,
            lambda jid: job_sql.save_progress(
                jid, job_rows.dumps(counted), job_rows.dumps(appended)
            ),
        )

    def finish(self, job_id: str, status: JobStatus, message: str = "") -> bool:
        terminal = job_rows.check_terminal(status)
        sql.check_texts("job message", [message])
        return self._update(job_id, lambda jid: job_sql.finish_job(jid, terminal.value, message))

    def set_snapshot(self, job_id: str, snapshot_id: int) -> None:
        try:
            self._update(job_id, lambda jid: job_sql.set_snapshot(jid, snapshot_id))
        except InvalidInputError as exc:
            if isinstance(exc.__cause__, psycopg.errors.ForeignKeyViolation):
                raise InvalidInputError(f"snapshot {snapshot_id} does not exist") from exc
            raise

    def add_webhook(self, job_id: str, delivery: WebhookDelivery) -> None:
        entry = [job_rows.delivery_json(job_rows.check_delivery(delivery))]
        self._update(job_id, lambda jid: job_sql.add_webhook(jid, job_rows.dumps(entry)))

    def _update(self, job_id: str, build: Callable[[str], sql.Query]) -> bool:
        """Run the UPDATE ``build(canonical id)``; True when it changed the job."""
        canonical = job_rows.parse_job_id(job_id)
        if canonical is None:
            return False
        with self._connection() as conn:
            return execute(conn, build(canonical)).rowcount == 1

    def _existing(
        self,
        conn: psycopg.Connection[Any],
        request: JobRequest,
        job_id: str,
        repository_id: int,
        commit: str | None,
    ) -> Job | None:
        """The job this create is answered with: same idempotency key, else same live
        commit, else this very job id (a create replayed)."""
        if request.idempotency_key is not None:
            query = job_sql.job_by_key(request.repo.tenant, request.idempotency_key)
            row = execute(conn, query).fetchone()
            if row is not None:
                return job_rows.job_from_row(row)
        if commit is not None and not request.reindex_paths:
            row = execute(
                conn, job_sql.job_by_commit(repository_id, request.ref_name, commit)
            ).fetchone()
            if row is not None:
                return job_rows.job_from_row(row)
        row = execute(conn, job_sql.job_by_id(job_id, None)).fetchone()
        if row is None:
            return None
        same = job_rows.job_from_row(row)
        if same.repo != request.repo:
            raise InvalidInputError(f"job id {job_id!r} is taken by a job of another repository")
        return same

    @staticmethod
    def _one(conn: psycopg.Connection[Any], query: sql.Query) -> Job:
        row = execute(conn, query).fetchone()
        if row is None:  # pragma: no cover - read in the transaction that wrote it
            raise StoreUnavailableError(STORE, "a job just written cannot be read back")
        return job_rows.job_from_row(row)
