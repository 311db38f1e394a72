"""SQL of the uploaded archives (migrations/sql/0009_source_uploads.sql): statement texts
and parameters, no I/O.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from pipeline.sources.uploads import UPLOAD_PREFIX
from pipeline.statements.sql import Query


def begin(upload_id: str, tenant: str) -> Query:
    return Query(
        "INSERT INTO source_uploads (id, tenant_id) VALUES (%(id)s, %(tenant)s)",
        {"id": upload_id, "tenant": tenant},
    )


def add_part(upload_id: str, part_no: int, data: bytes) -> Query:
    return Query(
        "INSERT INTO source_upload_parts (upload_id, part_no, data)"
        " VALUES (%(id)s, %(part)s, %(data)s)"
        " ON CONFLICT (upload_id, part_no) DO UPDATE SET data = EXCLUDED.data",
        {"id": upload_id, "part": part_no, "data": data},
    )


def finish(upload_id: str, size_bytes: int) -> Query:
    return Query(
        "UPDATE source_uploads SET complete = true, size_bytes = %(size)s WHERE id = %(id)s",
        {"id": upload_id, "size": size_bytes},
    )


def header(upload_id: str) -> Query:
    return Query(
        "SELECT tenant_id, complete FROM source_uploads WHERE id = %(id)s", {"id": upload_id}
    )


def part_numbers(upload_id: str) -> Query:
    return Query(
        "SELECT part_no FROM source_upload_parts WHERE upload_id = %(id)s ORDER BY part_no",
        {"id": upload_id},
    )


def part(upload_id: str, part_no: int) -> Query:
    return Query(
        "SELECT data FROM source_upload_parts WHERE upload_id = %(id)s AND part_no = %(part)s",
        {"id": upload_id, "part": part_no},
    )


def discard(upload_id: str) -> Query:
    return Query("DELETE FROM source_uploads WHERE id = %(id)s", {"id": upload_id})


def collect(older_than_s: float, limit: int) -> Query:
    """Uploads older than ``older_than_s`` that no queued or running job names."""
    return Query(
        "DELETE FROM source_uploads WHERE id IN ("
        " SELECT u.id FROM source_uploads u"
        " WHERE u.created_at < now() - make_interval(secs => %(older_than_s)s)"
        " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.source_kind = 'archive'"
        " AND j.source_location = %(prefix)s || u.id::text"
        " AND j.status IN ('queued', 'running'))"
        " LIMIT %(limit)s)",
        {"older_than_s": float(older_than_s), "limit": int(limit), "prefix": UPLOAD_PREFIX},
    )
