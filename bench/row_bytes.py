"""What one chunk costs on disk, measured on a real database (for the scale arithmetic of
bench/results/search.md).

Owns one read-only query set over ``chunks`` and the tables beside it: the rows, the
mean stored bytes of each wide column (``pg_column_size``: after compression, before
TOAST pointers are followed), the heap, TOAST and each index of ``chunks``
(``pg_relation_size``), and the embedding cache's and the source blobs' totals.

Must not import: api/, pipeline/ (it reads the schema, it does not use the stores).
"""

from __future__ import annotations

from typing import Any

import psycopg

_COLUMNS = ("embedding", "tsv", "content", "path", "id", "symbol", "file_sha256")
_TABLES = ("chunks", "embedding_cache", "source_blobs", "files", "file_symbols", "symbol_names")


def chunk_row_bytes(dsn: str) -> dict[str, Any]:
    """Rows, mean bytes per column, and every relation's size of ``chunks`` (and the
    totals of the tables stored beside each chunk), in one snapshot."""
    means = ", ".join(f"avg(pg_column_size({c}))" for c in _COLUMNS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT count(*), avg(pg_column_size(c.*)), {means} FROM chunks c"
        ).fetchone()
        assert row is not None
        rows = int(row[0])
        out: dict[str, Any] = {
            "rows": rows,
            "mean_row_bytes": _round(row[1]),
            "mean_column_bytes": {c: _round(v) for c, v in zip(_COLUMNS, row[2:], strict=True)},
        }
        sizes = conn.execute(
            "SELECT pg_relation_size(c.oid), pg_relation_size(c.reltoastrelid),"
            " pg_indexes_size(c.oid), pg_total_relation_size(c.oid)"
            " FROM pg_class c WHERE c.oid = 'chunks'::regclass"
        ).fetchone()
        assert sizes is not None
        out["chunks_bytes"] = dict(zip(("heap", "toast", "indexes", "total"), sizes, strict=True))
        out["index_bytes"] = dict(
            conn.execute(
                "SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid)"
                " FROM pg_index i WHERE i.indrelid = 'chunks'::regclass ORDER BY 1"
            ).fetchall()
        )
        out["table_total_bytes"] = {
            t: conn.execute("SELECT pg_total_relation_size(%s::regclass)", (t,)).fetchone()[0]  # type: ignore[index]
            for t in _TABLES
            if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None  # type: ignore[index]
        }
    if rows:
        out["total_bytes_per_row"] = round(out["chunks_bytes"]["total"] / rows, 1)
    return out


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def repository_rows(dsn: str, tenant: str, repo: str) -> int:
    """How many chunk rows repository ``repo`` of ``tenant`` holds now (every version)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM chunks c JOIN repositories r ON r.id = c.repository_id"
            " WHERE r.tenant_id = %s AND r.name = %s",
            (tenant, repo),
        ).fetchone()
    return int(row[0]) if row else 0
