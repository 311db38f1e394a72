"""PgModelRegistry: the embedding models of a deployment and each one's vector table.

The registry's rows (``embedding_models``, migration 0019) and the work on a model's
own table ``chunk_vectors_<id>``: created with the model (vector(dimension) and its
HNSW index), filled by the backfill (chunk rows without a row of it, in key order,
embedded and written back in one binary COPY per batch), checked and switched in one
transaction, dropped after the switch. The statement texts live in
``pipeline.statements.model_sql``; the rules in ``pipeline.embedding_models``.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.adapters.postgres.base import PgStore, copy_rows, execute, open_pool
from pipeline.embedding_models import (
    LEGACY_DIMENSION,
    LEGACY_STORAGE,
    ModelSpec,
    RegisteredModel,
    check_switch,
    side_storage,
)
from pipeline.errors import ConflictError, NotFoundError
from pipeline.statements import model_sql, sql

Key = tuple[int, str, str]  # a chunk row: repository id, file sha256, chunk id
CLEAR_BATCH_ROWS = 5000
SWITCH_LOCK_TIMEOUT_S = 2.0  # the switch waits no longer for the writes under way


def _model(row: Sequence[Any]) -> RegisteredModel:
    return RegisteredModel(
        id=int(row[0]),
        model_id=str(row[1]),
        name=str(row[2]),
        backend=str(row[3]),
        dimension=int(row[4]),
        fingerprint=str(row[5]),
        storage=str(row[6]),
        state=row[7],
        chunks_total=int(row[8]),
        chunks_done=int(row[9]),
        error=row[10],
        dropped=bool(row[11]),
    )


class PgModelRegistry(PgStore):
    """Call :meth:`close` when done."""

    def __init__(self, dsn: str, *, pool_size: int = 2, timeout_s: float = 5.0) -> None:
        self._pool = open_pool(
            dsn, pool_size=pool_size, timeout_s=timeout_s, name="quarry-model-registry"
        )

    def models(self) -> list[RegisteredModel]:
        with self._connection() as conn:
            return [_model(r) for r in execute(conn, model_sql.models())]

    def live(self) -> list[RegisteredModel]:
        """The active model first, then the one a backfill is filling (if any)."""
        with self._connection() as conn:
            found = [_model(r) for r in execute(conn, model_sql.live_models())]
        return sorted(found, key=lambda m: m.state != "active")

    def active(self) -> RegisteredModel | None:
        return next((m for m in self.live() if m.state == "active"), None)

    def get(self, model_id: str) -> RegisteredModel:
        for model in self.models():
            if model.model_id == model_id:
                return model
        raise NotFoundError(f"model {model_id!r} is not registered (see `quarry model status`)")

    def ensure_active(self, spec: ModelSpec) -> RegisteredModel:
        """The active model; ``spec`` registered as it when there is none yet (an index
        that never embedded anything), in chunks.embedding when it fits there."""
        with self._transaction() as conn:
            execute(conn, model_sql.lock_registry())
            for row in execute(conn, model_sql.live_models()):
                if row[7] == "active":
                    return _model(row)
            legacy_free = not any(r[6] == LEGACY_STORAGE for r in execute(conn, model_sql.models()))
            return self._register(conn, spec, "active", legacy=legacy_free)

    def start_backfill(self, spec: ModelSpec) -> RegisteredModel:
        """Register ``spec`` as the model being backfilled, with its own table (created
        here); ConflictError when a switch is running or it is already active."""
        with self._transaction() as conn:
            execute(conn, model_sql.lock_registry())
            models = [_model(r) for r in execute(conn, model_sql.models())]
            if not any(m.state == "active" for m in models):
                raise ConflictError(
                    "no model is active yet: index something first (the workers register"
                    " the configured model), or set QUARRY_EMBED_MODEL before the first job"
                )
            check_switch(spec, models)
            return self._register(conn, spec, "backfilling", legacy=False)

    def _register(self, conn: Any, spec: ModelSpec, state: str, *, legacy: bool) -> RegisteredModel:
        row_id = _one(conn, model_sql.next_id())
        in_chunks = legacy and spec.dimension == LEGACY_DIMENSION
        storage = LEGACY_STORAGE if in_chunks else side_storage(row_id)
        row = execute(conn, model_sql.register(spec, state, row_id, storage)).fetchone()
        if row is None:
            raise ConflictError(f"model {spec.model_id!r} is registered and not retired")
        model = _model(row)
        if not model.in_chunks_table:
            for query in model_sql.create_vectors_table(model.storage, model.dimension):
                execute(conn, query)
        return model

    def missing(self, model: RegisteredModel, after: Key | None, limit: int) -> list[Any]:
        """Up to ``limit`` (key, content hash, text) of chunk rows without ``model``'s
        vector row, in key order after ``after``."""
        query = model_sql.missing_rows(model.storage, after, limit)
        with self._connection() as conn:
            return [
                ((int(r[0]), str(r[1]), str(r[2])), str(r[3]), str(r[4]))
                for r in execute(conn, query)
            ]

    def write_vectors(
        self, model: RegisteredModel, rows: Mapping[Key, npt.NDArray[np.float32] | None]
    ) -> int:
        """Vector rows of ``model`` (None: a blank chunk, covered without a vector)."""
        staged = []
        for (repo_id, sha, chunk_id), vector in rows.items():
            checked = None
            if vector is not None:
                checked = sql.check_vector(vector, model.dimension, f"chunk {chunk_id!r}")
            staged.append((repo_id, sha, chunk_id, checked))
        if not staged:
            return 0
        with self._transaction() as conn:
            return write_staged(conn, model.storage, staged)

    def progress(self, model: RegisteredModel) -> tuple[int, int]:
        with self._transaction() as conn:
            row = execute(conn, model_sql.progress(model.storage, model.id)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def switch(self, model: RegisteredModel) -> int:
        """Make ``model`` active if it covers every chunk row: 0, the switch done in one
        statement; else the count of chunk rows it still lacks, nothing changed. The
        live rows are locked first, so a write that read them ends before (and one after
        waits for) the check and the switch."""
        # Counted first without any lock (a scan of every chunk row): only a count of 0
        # takes the locks, under which writes wait, and then for the re-count alone,
        # which gives up after SWITCH_LOCK_TIMEOUT_S rather than queue every write behind
        # it (the next backfill step tries again).
        with self._transaction() as conn:
            missing = _one(conn, model_sql.count_missing(model.storage))
        if missing:
            return missing
        with self._transaction() as conn:
            execute(conn, model_sql.set_lock_timeout(SWITCH_LOCK_TIMEOUT_S))
            execute(conn, model_sql.lock_registry())
            rows = [_model(r) for r in execute(conn, model_sql.live_models("UPDATE"))]
            if not any(m.id == model.id and m.state == "backfilling" for m in rows):
                raise ConflictError(f"model {model.model_id!r} is not being backfilled")
            missing = _one(conn, model_sql.count_missing(model.storage))
            if missing:
                return missing
            execute(conn, model_sql.switch(model.id))
        with self._transaction() as conn:
            execute(conn, model_sql.progress(model.storage, model.id))
        return 0

    def cancel(self, model: RegisteredModel, error: str | None = None) -> bool:
        """Stop a backfill: the model retired (its table dropped by :meth:`drop_retired`)."""
        with self._transaction() as conn:
            return execute(conn, model_sql.retire(model.id, error)).fetchone() is not None

    def drop_retired(self) -> list[str]:
        """Drop the vectors of every retired model not dropped yet; their model ids."""
        dropped = []
        for model in self.models():
            if model.state != "retired" or model.dropped:
                continue
            if model.in_chunks_table:
                self._clear_chunks(model.model_id)
            else:
                with self._transaction() as conn:
                    execute(conn, model_sql.drop_vectors_table(model.storage))
            with self._transaction() as conn:
                execute(conn, model_sql.mark_dropped(model.id))
            dropped.append(model.model_id)
        return dropped

    def _clear_chunks(self, model_id: str) -> None:
        # CONCURRENTLY, outside a transaction: a plain DROP INDEX locks chunks exclusively,
        # and every search and write would queue behind it (and it behind a slow reader).
        with self._connection() as conn:
            execute(conn, model_sql.DROP_CHUNKS_INDEX)
        while True:
            with self._transaction() as conn:
                query = model_sql.clear_chunk_vectors(model_id, CLEAR_BATCH_ROWS)
                if execute(conn, query).rowcount == 0:
                    return


def _one(conn: Any, query: sql.Query) -> int:
    row = execute(conn, query).fetchone()
    return int(row[0]) if row else 0


def live_for_write(conn: Any) -> list[RegisteredModel]:
    """The live models, share-locked for the write's transaction (see :meth:`switch`)."""
    return [_model(r) for r in execute(conn, model_sql.live_models("SHARE"))]


def write_staged(conn: Any, storage: str, staged: Sequence[tuple[Any, ...]]) -> int:
    """COPY ``staged`` (repository id, file sha256, chunk id, vector) into ``storage``."""
    conn.execute(model_sql.CREATE_VECTOR_STAGING)
    with conn.cursor() as cur:
        copy_rows(cur, model_sql.COPY_VECTOR_STAGING, model_sql.VECTOR_STAGING_TYPES, staged)
        merge = model_sql.merge_vectors(storage)
        cur.execute(merge.text, merge.params)
        written: int = cur.rowcount
    conn.execute("DROP TABLE quarry_vector_staging")
    return written
