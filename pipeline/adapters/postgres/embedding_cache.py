"""PgEmbeddingCache: the EmbeddingCache port on the ``embedding_cache`` table.

Vectors keyed by (model id, content sha256). Lookups are one ``= ANY`` query; stores
are one binary COPY into a temporary staging table and one ``INSERT ... ON CONFLICT DO
NOTHING``, in one transaction, so the first vector stored for a key stays.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from pipeline.adapters.postgres.base import (
    PooledStore,
    check_vector_column,
    copy_rows,
    open_pool,
)
from pipeline.adapters.postgres.connect import map_psycopg_errors
from pipeline.statements import sql


class PgEmbeddingCache(PooledStore):
    """Vectors of every registered model (``embedding_cache.embedding`` is a vector of
    any dimension since migration 0019: a key's model fixes it); ``dimension``, when
    given, refuses vectors of another. Call :meth:`close` when done."""

    def __init__(
        self, dsn: str, *, dimension: int | None = None, pool_size: int = 2, timeout_s: float = 5.0
    ) -> None:
        check_vector_column(
            dsn, "embedding_cache", "embedding", dimension or 0, timeout_s=timeout_s
        )
        self._dimension = dimension
        self._pool = open_pool(
            dsn, pool_size=pool_size, timeout_s=timeout_s, name="quarry-embedding-cache"
        )

    def get_many(
        self, model_id: str, content_hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        sql.check_texts("embedding cache model id", [model_id])
        sql.check_texts("content hash", content_hashes)
        if not content_hashes:
            return {}
        query = sql.cached_embeddings(model_id, content_hashes)
        with (
            map_psycopg_errors(),
            self._pool.connection() as conn,
            conn.cursor(binary=True) as cur,
        ):
            rows = cur.execute(query.text, query.params).fetchall()
        return {str(h): np.array(v.to_numpy(), dtype=np.float32) for h, v in rows}

    def put_many(self, model_id: str, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        rows = sql.cache_rows(model_id, vectors, self._dimension)
        if not rows:
            return
        merge = sql.merge_cache(model_id)
        with map_psycopg_errors(), self._pool.connection() as conn, conn.transaction():
            conn.execute(sql.CREATE_CACHE_STAGING)
            with conn.cursor() as cur:
                copy_rows(cur, sql.COPY_CACHE_STAGING, sql.CACHE_STAGING_TYPES, rows)
                cur.execute(merge.text, merge.params)
