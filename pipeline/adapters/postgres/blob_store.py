"""The real :class:`~pipeline.ports.BlobStore`: source blobs in PostgreSQL
(``source_blobs``; statements in pipeline/statements/blob_sql.py).

Every host that runs a chunk worker reaches the database, so this is where source bytes
travel between the ingest stage and the chunk stage. Blobs are zlib-compressed and
verified against their sha256 on the way in and on the way out
(pipeline.sources.blobs).

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.sources.blobs import check_blob, pack, unpack
from pipeline.statements import blob_sql, deletion_sql


class PgBlobStore(PgStore):
    """Source blobs in PostgreSQL. Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            table="source_blobs",
            column="data",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-blob-store",
        )

    def missing(self, hashes: Sequence[str]) -> set[str]:
        wanted = set(blob_sql.check_hashes(hashes))
        if not wanted:
            return set()
        with self._connection() as conn:
            rows = execute(conn, blob_sql.present(sorted(wanted))).fetchall()
        return wanted - {str(r[0]) for r in rows}

    def put_many(self, blobs: Mapping[str, bytes]) -> int:
        for sha256, data in blobs.items():
            check_blob(sha256, data)
        if not blobs:
            return 0
        rows = [(h, len(d), pack(d)) for h, d in sorted(blobs.items())]
        with self._transaction() as conn:
            return int(execute(conn, blob_sql.insert(rows)).rowcount)

    def get_many(self, hashes: Sequence[str]) -> dict[str, bytes]:
        wanted = sorted(set(blob_sql.check_hashes(hashes)))
        if not wanted:
            return {}
        with self._connection() as conn:
            rows = execute(conn, blob_sql.select(wanted)).fetchall()
        return {str(h): unpack(str(h), bytes(d)) for h, d in rows}

    def collect(self, *, older_than_s: float, limit: int) -> int:
        with self._transaction() as conn:
            execute(conn, deletion_sql.blob_lock(shared=False))
            return int(execute(conn, blob_sql.collect(older_than_s, limit)).rowcount)
