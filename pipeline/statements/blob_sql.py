"""SQL of the source blobs (migrations/sql/0008_source_blobs.sql): statement texts and
parameters, no I/O.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pipeline.errors import InvalidInputError
from pipeline.statements.sql import Query

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_hashes(hashes: Sequence[str]) -> list[str]:
    """The hashes, each a lower-case hex sha256 (InvalidInputError naming one that is not)."""
    for value in hashes:
        if not isinstance(value, str) or not _SHA256.match(value):
            raise InvalidInputError(f"blob hash {value!r} is not a lower-case hex sha256")
    return list(hashes)


def present(hashes: Sequence[str]) -> Query:
    return Query(
        "SELECT sha256 FROM source_blobs WHERE sha256 = ANY(%(hashes)s)",
        {"hashes": check_hashes(hashes)},
    )


def insert(rows: Sequence[tuple[str, int, bytes]]) -> Query:
    """Rows ``(sha256, size_bytes, packed)``; a blob that exists is left as it is."""
    return Query(
        "INSERT INTO source_blobs (sha256, size_bytes, data)"
        " SELECT * FROM unnest(%(hashes)s::text[], %(sizes)s::bigint[], %(data)s::bytea[])"
        " ON CONFLICT (sha256) DO NOTHING",
        {
            "hashes": check_hashes([r[0] for r in rows]),
            "sizes": [r[1] for r in rows],
            "data": [r[2] for r in rows],
        },
    )


def select(hashes: Sequence[str]) -> Query:
    return Query(
        "SELECT sha256, data FROM source_blobs WHERE sha256 = ANY(%(hashes)s)",
        {"hashes": check_hashes(hashes)},
    )


def collect(older_than_s: float, limit: int) -> Query:
    """Delete up to ``limit`` blobs no snapshot's files hold, stored ``older_than_s`` ago."""
    return Query(
        "DELETE FROM source_blobs WHERE sha256 IN ("
        " SELECT b.sha256 FROM source_blobs b"
        " WHERE b.created_at < now() - make_interval(secs => %(older_than_s)s)"
        " AND NOT EXISTS (SELECT 1 FROM files f WHERE f.content_sha256 = b.sha256)"
        " LIMIT %(limit)s)",
        {"older_than_s": float(older_than_s), "limit": int(limit)},
    )
