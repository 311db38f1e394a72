"""The real :class:`~pipeline.ports.UploadStore`: uploaded archives in PostgreSQL, in
parts (``source_uploads``, ``source_upload_parts``; statements in
pipeline/statements/upload_sql.py). Parts are read one query at a time, so a 200 MB
archive never sits in memory whole.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.errors import InvalidInputError
from pipeline.statements import upload_sql


class PgUploadStore(PgStore):
    """Uploaded archives in PostgreSQL. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="source_upload_parts",
            column="data",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-upload-store",
        )

    def begin(self, tenant: str) -> str:
        upload_id = str(uuid.uuid4())
        with self._transaction() as conn:
            execute(conn, upload_sql.begin(upload_id, tenant))
        return upload_id

    def add_part(self, upload_id: str, part_no: int, data: bytes) -> None:
        with self._transaction() as conn:
            execute(conn, upload_sql.add_part(upload_id, part_no, data))

    def finish(self, upload_id: str, size_bytes: int) -> None:
        with self._transaction() as conn:
            execute(conn, upload_sql.finish(upload_id, size_bytes))

    def read(self, upload_id: str, tenant: str) -> Iterator[bytes]:
        with self._connection() as conn:
            found = execute(conn, upload_sql.header(upload_id)).fetchone()
            if found is None or found[0] != tenant or not found[1]:
                raise InvalidInputError(f"upload {upload_id} is unknown or incomplete")
            numbers = [int(r[0]) for r in execute(conn, upload_sql.part_numbers(upload_id))]
        for number in numbers:
            with self._connection() as conn:
                row = execute(conn, upload_sql.part(upload_id, number)).fetchone()
            if row is None:
                raise InvalidInputError(f"upload {upload_id} lost its part {number}")
            yield bytes(row[0])

    def discard(self, upload_id: str) -> None:
        with self._transaction() as conn:
            execute(conn, upload_sql.discard(upload_id))

    def collect(self, *, older_than_s: float, limit: int) -> int:
        with self._transaction() as conn:
            return int(execute(conn, upload_sql.collect(older_than_s, limit)).rowcount)
