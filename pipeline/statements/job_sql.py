"""SQL of the job store, as plain strings and parameter dicts.

Owns the statement texts of ``PgJobStore`` (tables of migrations/sql/0002, 0004 and
0006) and the schema check every store makes; those of ``PgSnapshotStore`` are in
``pipeline.statements.snapshot_sql``, those of ``PgTokenStore`` in
``pipeline.statements.token_sql``. The checks and the JSON shapes that the
real stores and their in-memory fakes share live in ``pipeline.statements.job_rows``.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pipeline.jobs import MAX_ERRORS, JobRequest
from pipeline.statements.job_rows import MAX_WEBHOOKS
from pipeline.statements.sql import Query

# The columns of pipeline.statements.job_rows.job_from_row, in its order.
_JOB_SELECT = """
SELECT j.id::text, j.tenant_id, r.name, j.commit_sha, j.status, j.stage, j.source_kind,
       j.source_location, j.source_ref, j.callback_url, j.idempotency_key, j.counters,
       j.errors, j.webhooks, extract(epoch FROM j.created_at)::float8,
       extract(epoch FROM j.started_at)::float8, extract(epoch FROM j.finished_at)::float8,
       j.snapshot_id, j.message, j.reindex_paths, j.ref_name, j.seq
FROM jobs AS j JOIN repositories AS r ON r.id = j.repository_id
"""


# Counters overwritten, errors appended keeping the newest %(keep)s, in their order.
_SAVE_PROGRESS = """
UPDATE jobs AS j SET counters = %(counters)s::jsonb, updated_at = now(),
    errors = (SELECT coalesce(jsonb_agg(x.value ORDER BY x.n), '[]'::jsonb) FROM (
        SELECT value, n FROM jsonb_array_elements(j.errors || %(errors)s::jsonb)
        WITH ORDINALITY AS e (value, n) ORDER BY n DESC LIMIT %(keep)s) AS x)
WHERE j.id = %(id)s::uuid
"""
_ADD_WEBHOOK = """
UPDATE jobs AS j SET updated_at = now(),
    webhooks = (SELECT coalesce(jsonb_agg(x.value ORDER BY x.n), '[]'::jsonb) FROM (
        SELECT value, n FROM jsonb_array_elements(j.webhooks || %(delivery)s::jsonb)
        WITH ORDINALITY AS e (value, n) ORDER BY n DESC LIMIT %(keep)s) AS x)
WHERE j.id = %(id)s::uuid
"""


# --- tenants and repositories -----------------------------------------------------


def ensure_tenant(tenant: str) -> Query:
    return Query(
        "INSERT INTO tenants (id) VALUES (%(tenant)s) ON CONFLICT (id) DO NOTHING",
        {"tenant": tenant},
    )


# --- jobs ---------------------------------------------------------------------------


def job_by_id(job_id: str, tenant: str | None) -> Query:
    return Query(
        _JOB_SELECT + " WHERE j.id = %(id)s::uuid"
        " AND (%(tenant)s::text IS NULL OR j.tenant_id = %(tenant)s::text)",
        {"id": job_id, "tenant": tenant},
    )


def job_by_key(tenant: str, key: str) -> Query:
    return Query(
        _JOB_SELECT + " WHERE j.tenant_id = %(tenant)s AND j.idempotency_key = %(key)s",
        {"tenant": tenant, "key": key},
    )


def job_by_commit(repository_id: int, ref_name: str | None, commit: str) -> Query:
    """The job that a new one for the commit on the ref (None: the repository's default
    ref) is answered with: a live one, else the done one while the ref still holds that
    commit (a ref that moved on, or was deleted, may be given the commit again)."""
    return Query(  # fixed fragments only; every value is a bound parameter
        _JOB_SELECT  # noqa: S608
        + " WHERE j.repository_id = %(repository_id)s AND j.commit_sha = %(commit)s"
        " AND j.ref_name = coalesce(%(ref)s::text, r.default_ref)"
        " AND (j.status IN ('queued', 'running') OR (j.status = 'done' AND EXISTS ("
        "SELECT 1 FROM refs AS f JOIN snapshots AS s ON s.id = f.snapshot_id"
        " WHERE f.repository_id = j.repository_id AND f.name = j.ref_name"
        " AND s.commit_sha = j.commit_sha)))"
        " ORDER BY j.status IN ('queued', 'running') DESC, j.seq DESC LIMIT 1",
        {"repository_id": repository_id, "commit": commit, "ref": ref_name},
    )


def insert_job(request: JobRequest, job_id: str, repository_id: int, commit: str | None) -> Query:
    """A queued job, or nothing when its id, idempotency key or (repository, ref, commit)
    conflicts with a job already there (then the caller looks that one up). Its ref is
    the request's, else the repository's default ref."""
    return Query(
        "INSERT INTO jobs (id, tenant_id, repository_id, commit_sha, dedupe_commit,"
        " idempotency_key, callback_url, source_kind, source_location, source_ref,"
        " reindex_paths, ref_name)"
        " SELECT %(id)s::uuid, %(tenant)s, %(repository_id)s, %(commit)s, %(dedupe)s,"
        " %(key)s, %(callback)s, %(kind)s, %(location)s, %(ref)s, %(reindex)s::jsonb,"
        " coalesce(%(ref_name)s::text, r.default_ref)"
        " FROM repositories AS r WHERE r.id = %(repository_id)s"
        " ON CONFLICT DO NOTHING RETURNING id",
        {
            "id": job_id,
            "tenant": request.repo.tenant,
            "repository_id": repository_id,
            "commit": commit or "",
            "dedupe": None if request.reindex_paths else commit,
            "key": request.idempotency_key,
            "callback": request.callback_url,
            "kind": str(request.source.kind),
            "location": request.source.location,
            "ref": request.source.ref,
            "reindex": json.dumps(list(request.reindex_paths)),
            "ref_name": request.ref_name,
        },
    )


def discard_job(job_id: str) -> Query:
    """Delete a job that never started (queued, no started_at); leave any other."""
    return Query(
        "DELETE FROM jobs WHERE id = %(id)s::uuid AND status = 'queued' AND started_at IS NULL",
        {"id": job_id},
    )


def list_jobs(
    tenant: str,
    name: str | None,
    limit: int,
    *,
    statuses: Sequence[str] = (),
    offset: int = 0,
) -> Query:
    """The tenant's jobs newest first, of one repository and of ``statuses`` when given
    (empty: any), ``offset`` newer ones skipped."""
    return Query(
        _JOB_SELECT + " WHERE j.tenant_id = %(tenant)s"
        " AND (%(name)s::text IS NULL OR r.name = %(name)s::text)"
        " AND (cardinality(%(statuses)s::text[]) = 0 OR j.status = ANY(%(statuses)s::text[]))"
        " ORDER BY j.created_at DESC, j.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {
            "tenant": tenant,
            "name": name,
            "statuses": list(statuses),
            "limit": max(0, limit),
            "offset": max(0, offset),
        },
    )


def idle_jobs(idle_s: float, limit: int) -> Query:
    """Queued or running jobs untouched for ``idle_s`` seconds (the partial index
    ``jobs_active`` keeps this cheap), the longest idle first."""
    return Query(
        _JOB_SELECT + " WHERE j.status IN ('queued', 'running')"
        " AND j.updated_at < now() - make_interval(secs => %(idle)s)"
        " ORDER BY j.updated_at, j.id LIMIT %(limit)s",
        {"idle": max(0.0, float(idle_s)), "limit": max(0, limit)},
    )


def start_job(job_id: str, stage: str, commit: str | None) -> Query:
    return Query(
        "UPDATE jobs SET status = 'running', stage = %(stage)s,"
        " started_at = coalesce(started_at, now()),"
        " commit_sha = CASE WHEN commit_sha = '' THEN coalesce(%(commit)s::text, '')"
        " ELSE commit_sha END, updated_at = now()"
        " WHERE id = %(id)s::uuid AND status IN ('queued', 'running')",
        {"id": job_id, "stage": stage, "commit": commit or None},
    )


def set_stage(job_id: str, stage: str) -> Query:
    return Query(
        "UPDATE jobs SET stage = %(stage)s, updated_at = now()"
        " WHERE id = %(id)s::uuid AND status IN ('queued', 'running')",
        {"id": job_id, "stage": stage},
    )


def save_progress(job_id: str, counters_json: str, errors_json: str) -> Query:
    return Query(
        _SAVE_PROGRESS,
        {"id": job_id, "counters": counters_json, "errors": errors_json, "keep": MAX_ERRORS},
    )


def finish_job(job_id: str, status: str, message: str) -> Query:
    """Terminal with finished_at, only from a live status: the first caller wins. A done
    job's stage becomes ``done``; a failed one keeps the stage it failed at."""
    return Query(
        "UPDATE jobs SET status = %(status)s::text, message = %(message)s,"
        " finished_at = now(), updated_at = now(),"
        " stage = CASE WHEN %(status)s::text = 'done' THEN 'done' ELSE stage END"
        " WHERE id = %(id)s::uuid AND status IN ('queued', 'running')",
        {"id": job_id, "status": status, "message": message},
    )


def set_snapshot(job_id: str, snapshot_id: int) -> Query:
    return Query(
        "UPDATE jobs SET snapshot_id = %(snapshot_id)s, updated_at = now() WHERE id = %(id)s::uuid",
        {"id": job_id, "snapshot_id": snapshot_id},
    )


def add_webhook(job_id: str, delivery_json: str) -> Query:
    return Query(
        _ADD_WEBHOOK,
        {"id": job_id, "delivery": delivery_json, "keep": MAX_WEBHOOKS},
    )


def schema_column(table: str, column: str) -> Query:
    """One row when ``table.column`` exists (the migration that adds it was applied)."""
    return Query(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%(table)s)"
        " AND attname = %(column)s AND NOT attisdropped",
        {"table": table, "column": column},
    )
