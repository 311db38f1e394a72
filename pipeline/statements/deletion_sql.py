"""SQL of repository deletion (migrations/sql/0014_repo_deletions.sql): statement texts
and parameters, no I/O.

Every row statement is bounded by ``limit`` and keyed by the repository id, so that a
repository of any size is removed in short transactions, and a deletion resumed after
a crash starts again where the rows left off. The statements that delete files and
chunks record the content hashes they held (``repo_deletion_hashes``) in the same
statement, so the collection of shared content that follows knows them even after a
crash.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from typing import Final

from pipeline.models import RepoRef
from pipeline.statements.sql import Query, check_repo

# The key of the advisory lock between the collection of source blobs and the start of
# a snapshot (pipeline/adapters/postgres/snapshot_store.py takes it shared): see
# COLLECT_BLOBS.
BLOB_LOCK_KEY: Final = 0x717561727279  # "quarry"

_LOCK: Final = {
    True: "SELECT id, deletion_id::text FROM repositories"
    " WHERE tenant_id = %(tenant)s AND name = %(name)s FOR KEY SHARE",
    False: "SELECT id, deletion_id::text FROM repositories"
    " WHERE tenant_id = %(tenant)s AND name = %(name)s FOR UPDATE",
}
_SELECT = (
    "SELECT id::text, tenant_id, repo_name, status, stage, counters, error,"
    " extract(epoch FROM created_at)::float8, extract(epoch FROM finished_at)::float8"
    " FROM repo_deletions"
)


def lock_repository(repo: RepoRef, *, for_job: bool) -> Query:
    """(id, deletion id) of the repository, row-locked: FOR UPDATE by a deletion, FOR
    KEY SHARE by a job's creation, so that the two wait for each other and the second
    sees what the first did (KEY SHARE: a job's creation does not wait for the switch of
    the searchable snapshot, which holds NO KEY UPDATE)."""
    check_repo(repo)
    return Query(_LOCK[for_job], {"tenant": repo.tenant, "name": repo.name})


def active_job(repository_id: int) -> Query:
    return Query(
        "SELECT id::text, status FROM jobs WHERE repository_id = %(repository_id)s"
        " AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1",
        {"repository_id": repository_id},
    )


def begin(deletion_id: str, repo: RepoRef, repository_id: int) -> list[Query]:
    """Record the deletion and mark the repository with it (one transaction)."""
    params = {
        "id": deletion_id,
        "tenant": repo.tenant,
        "name": repo.name,
        "repository_id": repository_id,
    }
    return [
        Query(
            "INSERT INTO repo_deletions (id, tenant_id, repo_name, repository_id)"
            " VALUES (%(id)s::uuid, %(tenant)s, %(name)s, %(repository_id)s)",
            params,
        ),
        Query(
            "UPDATE repositories SET deletion_id = %(id)s::uuid WHERE id = %(repository_id)s",
            params,
        ),
    ]


def deletion(deletion_id: str, tenant: str | None) -> Query:
    return Query(
        _SELECT + " WHERE id = %(id)s::uuid"
        " AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s::text)",
        {"id": deletion_id, "tenant": tenant},
    )


def repository_id(deletion_id: str) -> Query:
    return Query(
        "SELECT repository_id FROM repo_deletions WHERE id = %(id)s::uuid",
        {"id": deletion_id},
    )


def unfinished(idle_s: float, limit: int) -> Query:
    """Deletions queued or running that made no progress for ``idle_s``, claimed: their
    ``updated_at`` is set to now, so that each is sent again at most once per ``idle_s``
    however many sweeps run while its message waits in a long queue."""
    return Query(
        "UPDATE repo_deletions SET updated_at = now() WHERE id IN ("
        "SELECT id FROM repo_deletions WHERE status IN ('queued', 'running')"
        " AND updated_at < now() - make_interval(secs => %(idle_s)s)"
        " ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING id::text",
        {"idle_s": float(idle_s), "limit": int(limit)},
    )


def retry_failed(deletion_id: str) -> Query:
    """A failed deletion queued again (a new DELETE of its repository, still marked)."""
    return Query(
        "UPDATE repo_deletions SET status = 'queued', stage = 'graph', error = NULL,"
        " finished_at = NULL, updated_at = now()"
        " WHERE id = %(id)s::uuid AND status = 'failed' RETURNING id",
        {"id": deletion_id},
    )


def start(deletion_id: str) -> Query:
    """Running, unless it ended; returns the row when it may run."""
    return Query(
        "UPDATE repo_deletions SET status = 'running', updated_at = now()"
        " WHERE id = %(id)s::uuid AND status IN ('queued', 'running') RETURNING id",
        {"id": deletion_id},
    )


def set_stage(deletion_id: str, stage: str) -> Query:
    return Query(
        "UPDATE repo_deletions SET stage = %(stage)s, updated_at = now()"
        " WHERE id = %(id)s::uuid AND status = 'running'",
        {"id": deletion_id, "stage": stage},
    )


def add_counter(deletion_id: str, counter: str, n: int) -> Query:
    return Query(
        "UPDATE repo_deletions SET updated_at = now(), counters = counters"
        " || jsonb_build_object(%(counter)s::text,"
        " coalesce((counters ->> %(counter)s::text)::bigint, 0) + %(n)s)"
        " WHERE id = %(id)s::uuid",
        {"id": deletion_id, "counter": counter, "n": int(n)},
    )


def finish(deletion_id: str, status: str, error: str | None) -> Query:
    return Query(
        "UPDATE repo_deletions SET status = %(status)s, stage = %(stage)s, error = %(error)s,"
        " finished_at = now(), updated_at = now()"
        " WHERE id = %(id)s::uuid AND status IN ('queued', 'running')",
        {
            "id": deletion_id,
            "status": status,
            "stage": "done" if status == "done" else "failed",
            "error": error,
        },
    )


# The kind of content hash the stage's deleted rows held (repo_deletion_hashes.kind).
HASH_KIND: Final = {"chunks": "cache", "files": "blob"}


# Each: (deletion id, repository id, limit) -> the rows deleted, one bounded batch.
ERASE: Final[dict[str, str]] = {
    "chunks": (
        "WITH gone AS (DELETE FROM chunks WHERE repository_id = %(repository_id)s AND id IN"
        " (SELECT id FROM chunks WHERE repository_id = %(repository_id)s LIMIT %(limit)s)"
        " RETURNING content_sha256 AS sha256)"
        ", kept AS (INSERT INTO repo_deletion_hashes (deletion_id, kind, sha256)"
        " SELECT DISTINCT %(deletion_id)s::uuid, %(kind)s, sha256 FROM gone"
        " ON CONFLICT DO NOTHING) SELECT count(*) FROM gone"
    ),
    "files": (
        "WITH gone AS (DELETE FROM files WHERE (snapshot_id, path) IN"
        " (SELECT snapshot_id, path FROM files WHERE repository_id = %(repository_id)s"
        " LIMIT %(limit)s) RETURNING content_sha256 AS sha256)"
        ", kept AS (INSERT INTO repo_deletion_hashes (deletion_id, kind, sha256)"
        " SELECT DISTINCT %(deletion_id)s::uuid, %(kind)s, sha256 FROM gone"
        " ON CONFLICT DO NOTHING) SELECT count(*) FROM gone"
    ),
    # symbol_names go with their file_symbols row (ON DELETE CASCADE).
    "symbols": (
        "WITH gone AS (DELETE FROM file_symbols WHERE (repository_id, path, file_sha256) IN"
        " (SELECT repository_id, path, file_sha256 FROM file_symbols"
        " WHERE repository_id = %(repository_id)s LIMIT %(limit)s) RETURNING 1)"
        " SELECT count(*) FROM gone"
    ),
    "waiting_graphs": (
        "WITH gone AS (DELETE FROM job_file_graphs WHERE (job_id, path) IN"
        " (SELECT g.job_id, g.path FROM job_file_graphs AS g JOIN jobs AS j ON j.id = g.job_id"
        " WHERE j.repository_id = %(repository_id)s LIMIT %(limit)s) RETURNING 1)"
        " SELECT count(*) FROM gone"
    ),
    "jobs": (
        "WITH gone AS (DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
        " WHERE repository_id = %(repository_id)s LIMIT %(limit)s) RETURNING 1)"
        " SELECT count(*) FROM gone"
    ),
    "snapshots": (
        "WITH gone AS (DELETE FROM snapshots WHERE id IN (SELECT id FROM snapshots"
        " WHERE repository_id = %(repository_id)s LIMIT %(limit)s) RETURNING 1)"
        " SELECT count(*) FROM gone"
    ),
    # Only the row this deletion marked: a repository of the same name made later is
    # another row.
    "repository": (
        "WITH gone AS (DELETE FROM repositories WHERE id = %(repository_id)s"
        " AND deletion_id = %(deletion_id)s::uuid RETURNING 1) SELECT count(*) FROM gone"
    ),
    # Shared content: only what the deleted rows held (the hashes recorded above) and
    # no remaining row of any repository, of any tenant, holds. Each batch takes the next
    # recorded hashes, deletes those no longer held, and forgets the batch.
    "blobs": (
        "WITH batch AS (SELECT sha256 FROM repo_deletion_hashes"
        " WHERE deletion_id = %(deletion_id)s::uuid AND kind = 'blob' LIMIT %(limit)s),"
        " removed AS (DELETE FROM source_blobs AS b USING batch WHERE b.sha256 = batch.sha256"
        " AND NOT EXISTS (SELECT 1 FROM files AS f WHERE f.content_sha256 = b.sha256)"
        " RETURNING 1),"
        " gone AS (DELETE FROM repo_deletion_hashes AS h USING batch"
        " WHERE h.deletion_id = %(deletion_id)s::uuid AND h.kind = 'blob'"
        " AND h.sha256 = batch.sha256 RETURNING 1)"
        " SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM removed)"
    ),
    "cache": (
        "WITH batch AS (SELECT sha256 FROM repo_deletion_hashes"
        " WHERE deletion_id = %(deletion_id)s::uuid AND kind = 'cache' LIMIT %(limit)s),"
        " removed AS (DELETE FROM embedding_cache AS e USING batch"
        " WHERE e.content_sha256 = batch.sha256"
        " AND NOT EXISTS (SELECT 1 FROM chunks AS c WHERE c.content_sha256 = e.content_sha256)"
        " RETURNING 1),"
        " gone AS (DELETE FROM repo_deletion_hashes AS h USING batch"
        " WHERE h.deletion_id = %(deletion_id)s::uuid AND h.kind = 'cache'"
        " AND h.sha256 = batch.sha256 RETURNING 1)"
        " SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM removed)"
    ),
}


def erase(stage: str, deletion_id: str, repository_id: int, limit: int) -> Query:
    """The next batch of ``stage`` (a KeyError names an unknown stage)."""
    if limit < 1:
        raise ValueError(f"limit {limit} < 1")
    return Query(
        ERASE[stage],
        {
            "deletion_id": deletion_id,
            "repository_id": repository_id,
            "limit": int(limit),
            "kind": HASH_KIND.get(stage, ""),
        },
    )


def blob_lock(*, shared: bool) -> Query:
    """The advisory lock that orders blob collection against snapshot starts: a
    snapshot's files are committed before its job asks which blobs are missing, so a
    collection that waited for them sees them, and a job that waited for a collection
    finds its blobs missing and stores them again."""
    name = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    return Query(f"SELECT {name}(%(key)s)", {"key": BLOB_LOCK_KEY})
