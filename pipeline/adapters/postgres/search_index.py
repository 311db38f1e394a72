"""PgSearchIndex: the SearchIndex port on PostgreSQL (pgvector HNSW and full text).

Reads the ``chunks`` table that :class:`~pipeline.adapters.postgres.vector_store.PgVectorStore`
writes, through ``files`` of each repository's searchable snapshot (the statements and
the two vector plans are in ``pipeline.statements.search_sql``). The plan: ``exact`` while the
table holds at most ``exact_max_rows`` rows (the planner's estimate, read at most once a
minute) or the request's scope does (its snapshots' rows, counted once per set of
snapshots); else ``hnsw`` with ``ef_search`` (at least the number of hits asked for) and
pgvector's ``iterative_scan`` (``relaxed_order`` by default, bounded by
``max_scan_tuples``; pgvector >= 0.8, checked when the index opens), and when the scope
and filters still leave fewer hits than asked, again with four times the ``ef`` up to
pgvector's 1000, then ``exact`` over the scope. Each read is one short
transaction on a pooled autocommit connection.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from pipeline.adapters.postgres.base import (
    PooledStore,
    check_vector_column,
    check_vector_version,
    open_pool,
)
from pipeline.adapters.postgres.connect import map_psycopg_errors
from pipeline.embedding_models import LEGACY_STORAGE
from pipeline.models import Hit
from pipeline.search.bm25 import Plan, TermStats
from pipeline.search.query import SearchRequest
from pipeline.statements import search_sql
from pipeline.statements.sql import Query

TABLE_ROWS_TTL_S = 60.0
SCOPE_COUNTS_KEPT = 1024
Scope = list[tuple[int, int, str]]  # (repository id, searchable snapshot id, name)


class PgSearchIndex(PooledStore):
    """Search over the ``chunks`` table; ``dimension`` must match its vector column."""

    def __init__(
        self,
        dsn: str,
        *,
        dimension: int,
        ef_search: int = 400,
        exact_max_rows: int = 20_000,
        iterative_scan: str = "relaxed_order",
        max_scan_tuples: int = 20_000,
        lexical_seed: int = 16,
        max_lexical_matches: int = 2_000,
        lexical_budget_ms: int = 0,
        pool_size: int = 4,
        timeout_s: float = 5.0,
    ) -> None:
        check_vector_column(dsn, "chunks", "embedding", dimension, timeout_s=timeout_s)
        self._iterative = search_sql.set_iterative_scan(iterative_scan, max_scan_tuples)
        if self._iterative:
            check_vector_version(
                dsn, search_sql.ITERATIVE_MIN_VERSION, "iterative_scan", timeout_s=timeout_s
            )
        self._dimension = dimension
        self._ef_search = ef_search
        self._exact_max_rows = exact_max_rows
        self._lexical_seed = max(1, lexical_seed)
        self._max_lexical_matches = max(1, max_lexical_matches)
        self._lexical_budget_ms = max(0, int(lexical_budget_ms))
        self._pool = open_pool(
            dsn, pool_size=pool_size, timeout_s=timeout_s, name="quarry-search-index"
        )
        self._rows: tuple[float, int] | None = None
        self._scope_counts: dict[tuple[tuple[int, int], ...], int] = {}
        self._rows_lock = threading.Lock()
        self.plans: dict[str, int] = {
            "exact": 0,
            "hnsw": 0,
            "hnsw_retry": 0,
            "lexical_pruned": 0,
            "lexical_seed_only": 0,
            "lexical_seed_matches": 0,
            "lexical_budget": 0,
        }

    def missing_repositories(self, tenant: str, names: Sequence[str]) -> list[str]:
        if not names:
            return []
        with self._connection() as conn:
            found = {row[1] for row in self._scope_rows(conn, tenant, names)}
        return [name for name in names if name not in found]

    def selected(self, request: SearchRequest) -> dict[str, bool]:
        with self._connection() as conn:
            rows = self._scope_rows(conn, request.tenant, request.repos, request)
        return {name: snapshot is not None for _, name, snapshot in rows}

    def vector_hits(
        self, request: SearchRequest, vector: npt.NDArray[np.float32], model_id: str, limit: int
    ) -> list[Hit]:
        query_vector = np.asarray(vector, dtype=np.float32)
        with self._connection() as conn:
            scoped = self._scope(conn, request)
            if not scoped:
                return []
            filters = request.filters
            found = conn.execute(*search_sql.vector_storage(model_id)).fetchone()
            storage = str(found[0]) if found else LEGACY_STORAGE
            # HNSW only when both the table and the scope are large: a small tenant (or
            # repository) of a large table is read exactly, at once, with full recall,
            # rather than after HNSW tries that other tenants' rows starve.
            if (
                self._table_rows(conn) > self._exact_max_rows
                and self._scope_rows_count(conn, scoped) > self._exact_max_rows
            ):
                ef = max(self._ef_search, limit)
                while True:
                    self.plans["hnsw" if ef == max(self._ef_search, limit) else "hnsw_retry"] += 1
                    with conn.transaction():
                        conn.execute(search_sql.set_ef_search(ef).text)
                        for setting in self._iterative:
                            conn.execute(setting.text)
                        query = search_sql.vector_hnsw(
                            scoped,
                            filters,
                            query_vector,
                            model_id,
                            limit=limit,
                            ef=ef,
                            storage=storage,
                        )
                        rows = conn.execute(query.text, query.params).fetchall()
                    hits = [_hit(row[:-1]) for row in rows]
                    # Enough only when the index scan alone gave ``limit`` rows in scope:
                    # rows waiting for the index (0021) must not hide a starved scan.
                    from_index = int(rows[0][-1]) if rows else 0
                    if from_index >= limit or ef >= search_sql.HNSW_MAX_EF:
                        break
                    ef = min(search_sql.HNSW_MAX_EF, ef * 4)
                if from_index >= limit:
                    return hits
            self.plans["exact"] += 1
            query = search_sql.vector_exact(
                scoped, filters, query_vector, model_id, limit, storage=storage
            )
            return _hits(conn, query)

    def lexical_hits(self, request: SearchRequest, terms: Sequence[str], limit: int) -> list[Hit]:
        """The exact BM25 top ``limit`` (pipeline/search/bm25.py), in one repeatable-read
        transaction so that the statistics, postings and rows agree."""
        words = " ".join(t for t in dict.fromkeys(terms) if t)
        if not words.strip() or limit < 1:
            return []
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            scoped = self._scope(conn, request)
            if not scoped:
                return []
            plan, longest = lexical_plan(conn, scoped, words)
            if not plan.idf:
                return []
            filters = request.filters
            query = search_sql.lexical_seed(
                scoped, filters, plan, per_word=self._lexical_seed, limit=limit
            )
            seed = _hits(conn, query)
            if len(seed) < limit and self._lexical_seed < longest:
                # The best postings of each word are mostly out of scope or filtered out:
                # the threshold comes from rows matching there (bounded), not from none.
                self.plans["lexical_seed_matches"] += 1
                query = search_sql.lexical_seed_matches(
                    scoped, filters, plan, rows=self._max_lexical_matches, limit=limit
                )
                seed = _best([*seed, *_hits(conn, query)], limit)
            if len(seed) < limit:
                # Either seed read every posting of every word, or every row matching in
                # the scope and filters (fewer than ``rows``): the answer is complete.
                self.plans["lexical_seed_only"] += 1
                return seed
            theta = seed[-1].score
            query = search_sql.lexical_rest(scoped, filters, plan, theta=theta, limit=limit)
            try:
                with conn.transaction():  # a savepoint: a cancelled statement ends only it
                    if self._lexical_budget_ms:
                        conn.execute(f"SET LOCAL statement_timeout = {self._lexical_budget_ms}")
                    rest = _hits(conn, query)
            except psycopg.errors.QueryCanceled:
                # Past the budget: the seed's hits (exactly scored, maybe not the top k).
                self.plans["lexical_budget"] += 1
                return seed
            self.plans["lexical_pruned"] += 1
        return _best([*seed, *rest], limit)

    def _scope_rows_count(self, conn: psycopg.Connection[Any], scoped: Scope) -> int:
        """Rows in the scope's searchable snapshots, counted once per set of snapshots
        (a snapshot's rows never change once it is searchable)."""
        key = tuple(sorted((repo_id, snapshot) for repo_id, snapshot, _ in scoped))
        with self._rows_lock:
            cached = self._scope_counts.get(key)
        if cached is not None:
            return cached
        row = conn.execute(*search_sql.scope_rows(scoped)).fetchone()
        count = int(row[0]) if row else 0
        with self._rows_lock:
            if len(self._scope_counts) > SCOPE_COUNTS_KEPT:
                self._scope_counts.clear()
            self._scope_counts[key] = count
        return count

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with map_psycopg_errors(), self._pool.connection() as conn:
            yield conn

    @staticmethod
    def _scope_rows(
        conn: psycopg.Connection[Any],
        tenant: str,
        names: Sequence[str],
        request: SearchRequest | None = None,
    ) -> list[tuple[int, str, int | None]]:
        ref = None if request is None else request.ref
        commit = None if request is None else request.commit
        query = search_sql.scope(tenant, names, ref, commit)
        return [(int(i), str(n), s) for i, n, s in conn.execute(query.text, query.params)]

    def _scope(self, conn: psycopg.Connection[Any], request: SearchRequest) -> Scope:
        rows = self._scope_rows(conn, request.tenant, request.repos, request)
        return [(repo_id, int(snap), name) for repo_id, name, snap in rows if snap is not None]

    def _table_rows(self, conn: psycopg.Connection[Any]) -> int:
        now = time.monotonic()
        with self._rows_lock:
            if self._rows is not None and now - self._rows[0] < TABLE_ROWS_TTL_S:
                return self._rows[1]
        row = conn.execute(search_sql.table_rows().text).fetchone()
        count = max(0, int(row[0])) if row and row[0] is not None else 0
        with self._rows_lock:
            self._rows = (now, count)
        return count


def _best(hits: list[Hit], limit: int) -> list[Hit]:
    """The best ``limit`` distinct hits, in the statements' order (ties: path, line,
    repository, chunk id)."""
    best = {(h.repo, h.chunk_id): h for h in hits}
    order = sorted(
        best.values(), key=lambda h: (-h.score, h.path, h.start_line, h.repo, h.chunk_id)
    )
    return order[:limit]


def lexical_plan(conn: psycopg.Connection[Any], scoped: Scope, words: str) -> tuple[Plan, int]:
    """The BM25 plan of ``words`` over the scope's repositories, and the longest list."""
    docs = total_len = 0
    terms = []
    for lexeme, df, length, top in conn.execute(*search_sql.lexical_stats(scoped, words)):
        if lexeme == "":
            docs, total_len = int(df), int(length)
        elif df and top is not None:
            terms.append(TermStats(str(lexeme), int(df), float(top)))
    plan = Plan.of(docs, total_len, terms)
    return plan, max((t.df for t in terms), default=0)


def _hits(conn: psycopg.Connection[Any], query: Query) -> list[Hit]:
    return [_hit(row) for row in conn.execute(query.text, query.params)]


def _hit(row: Sequence[Any]) -> Hit:
    """A Hit of a row of HIT_COLUMNS and score."""
    repo, chunk_id, path, start, end, symbol, kind, language, content, body_bytes, score = row
    return Hit(
        repo=str(repo),
        chunk_id=str(chunk_id),
        path=str(path),
        start_line=int(start),
        end_line=int(end),
        symbol=str(symbol),
        kind=str(kind),
        language=str(language),
        content=str(content),
        score=float(score),
        body_bytes=int(body_bytes),
    )
