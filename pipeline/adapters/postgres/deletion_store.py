"""PgRepoDeletionStore: the RepoDeletionStore port on ``repo_deletions`` and the rows of
the repository it removes (statements: pipeline/statements/deletion_sql.py).

``begin`` locks the repository row FOR UPDATE; a job's creation locks it FOR KEY SHARE
(PgJobStore.create), so a deletion and a job of the same repository wait for each other
and the second sees the first: a deletion that waited sees the new job (409), a job
that waited sees the mark (409). Each batch of ``erase`` is one short transaction that
also counts what it removed, so the counters never say more or less than was removed.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from typing import Any

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.deletions import (
    STAGES,
    DeletionStatus,
    RepoDeletion,
    counter_of,
    new_deletion_id,
    parse_deletion_id,
)
from pipeline.errors import ConflictError, NotFoundError
from pipeline.models import RepoRef
from pipeline.statements import deletion_sql


class PgRepoDeletionStore(PgStore):
    """Deletions of every tenant. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="repositories",
            column="deletion_id",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-deletion-store",
        )

    def begin(self, repo: RepoRef) -> tuple[RepoDeletion, bool]:
        with self._transaction() as conn:
            found = execute(conn, deletion_sql.lock_repository(repo, for_job=False)).fetchone()
            if found is None:
                raise NotFoundError(f"repository {repo.name!r} not found")
            repository_id, pending = int(found[0]), found[1]
            if pending is not None:
                # A failed deletion leaves its repository marked (hidden, refusing jobs):
                # a new DELETE runs it again from the start, every stage being idempotent.
                again = execute(conn, deletion_sql.retry_failed(str(pending))).fetchone()
                return self._one(conn, str(pending)), again is not None
            job = execute(conn, deletion_sql.active_job(repository_id)).fetchone()
            if job is not None:
                raise ConflictError(
                    f"repository {repo.name!r} has job {job[0]} {job[1]};"
                    " cancel it or wait for it to end, then delete"
                )
            deletion_id = new_deletion_id()
            for query in deletion_sql.begin(deletion_id, repo, repository_id):
                execute(conn, query)
            return self._one(conn, deletion_id), True

    def get(self, deletion_id: str, tenant: str | None = None) -> RepoDeletion | None:
        canonical = parse_deletion_id(deletion_id)
        if canonical is None:
            return None
        with self._connection() as conn:
            row = execute(conn, deletion_sql.deletion(canonical, tenant)).fetchone()
        return None if row is None else _deletion(row)

    def unfinished(self, idle_s: float, limit: int) -> list[str]:
        with self._transaction() as conn:
            return [str(r[0]) for r in execute(conn, deletion_sql.unfinished(idle_s, limit))]

    def start(self, deletion_id: str) -> RepoDeletion | None:
        canonical = parse_deletion_id(deletion_id)
        if canonical is None:
            return None
        with self._transaction() as conn:
            if execute(conn, deletion_sql.start(canonical)).fetchone() is None:
                return None
            return self._one(conn, canonical)

    def set_stage(self, deletion_id: str, stage: str) -> None:
        with self._transaction() as conn:
            execute(conn, deletion_sql.set_stage(deletion_id, stage))

    def count(self, deletion_id: str, counter: str, n: int) -> None:
        with self._transaction() as conn:
            execute(conn, deletion_sql.add_counter(deletion_id, counter, n))

    def erase(self, deletion_id: str, stage: str, limit: int) -> int:
        if stage not in STAGES or stage == "graph":
            raise ValueError(f"no rows to erase in stage {stage!r}")
        with self._transaction() as conn:
            found = execute(conn, deletion_sql.repository_id(deletion_id)).fetchone()
            if found is None:
                return 0
            if stage == "blobs":
                execute(conn, deletion_sql.blob_lock(shared=False))
            query = deletion_sql.erase(stage, deletion_id, int(found[0]), limit)
            row = execute(conn, query).fetchone()
            taken = int(row[0]) if row else 0
            removed = int(row[1]) if row and len(row) > 1 else taken
            if removed:
                execute(conn, deletion_sql.add_counter(deletion_id, counter_of(stage), removed))
            return taken

    def finish(self, deletion_id: str, *, error: str | None = None) -> None:
        status = DeletionStatus.DONE if error is None else DeletionStatus.FAILED
        with self._transaction() as conn:
            execute(conn, deletion_sql.finish(deletion_id, str(status), error))

    def _one(self, conn: Any, deletion_id: str) -> RepoDeletion:
        row = execute(conn, deletion_sql.deletion(deletion_id, None)).fetchone()
        if row is None:  # pragma: no cover - read in the transaction that wrote it
            raise NotFoundError(f"deletion {deletion_id} not found")
        return _deletion(row)


def _deletion(row: Any) -> RepoDeletion:
    deletion_id, tenant, name, status, stage, counters, error, created, finished = row
    return RepoDeletion(
        deletion_id=str(deletion_id),
        repo=RepoRef(str(tenant), str(name)),
        status=DeletionStatus(status),
        stage=str(stage),
        counters={str(k): int(v) for k, v in dict(counters or {}).items()},
        error=error,
        created_at=float(created),
        finished_at=None if finished is None else float(finished),
    )
