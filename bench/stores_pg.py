"""PgVectorStore upsert throughput (chunks/s) with 384-dim vectors on real chunks.

Usage: .venv/bin/python bench/stores_pg.py --corpus bench/corpora/django-5.2.19
       [--vectors bow|random] [--batch-size 2000] [--writers 1] [--limit N]
       [--without-hnsw] [--update] [--defer-index] [--dsn ADMIN_DSN] [--json]

Chunks: ``pipeline.analysis.analyze.analyze_file`` on the corpus's Python files with the exact
WordPiece counter, as the pipeline chunks them (not timed). Vectors (the model is not
what is measured): ``bow`` sums a fixed random 384-dim vector per word of the chunk's
lexical text, so chunks that share words get near vectors and the HNSW graph sees
clustered data as with a real model; ``random`` is uniform on the sphere (HNSW's worst
case). Unless ``--dsn`` names a running server, a private PostgreSQL 16 + pgvector (the
stack's binaries, default settings) is started on a free loopback port and removed
afterwards; each run migrates a fresh database with the shipped migrations.

Timed, in this order:
- rows: ``pipeline.statements.sql.chunk_rows`` (checks + lexical text), Python only;
- copy: the adapter's binary COPY of those rows into its staging table, rolled back;
- cold: ``upsert_chunks`` of every batch into the empty table (all indexes maintained);
- replay: the same batches again (no row changes, nothing written);
- after each: ``index_pending`` until no row waits (the HNSW inserts the upsert leaves to
  the vector index task, migration 0021; ``*_index_s``, and ``*_with_index_per_s`` for
  the write and its index together);
- update (``--update``): the batches with other vectors (every row rewritten).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np
import psycopg
from machine import cpu_model  # bench/ is the script folder, so on sys.path
from pgvector.psycopg import register_vector

from bench.pg import fresh_database, private_postgres
from pipeline.adapters.models.vocab import model_token_counter
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.analysis.selection import select_files
from pipeline.models import Chunk, RepoRef, StoredChunk
from pipeline.search.lexical import lexical_text
from pipeline.statements import sql

DIMENSION = 384
Vectors = np.ndarray


INDEX_BATCH_ROWS = 128  # as QUARRY_VECTOR_INDEX_BATCH_ROWS


def corpus_chunks(corpus: Path, limit: int | None) -> list[tuple[Chunk, str]]:
    """(chunk, file sha256) of every Python file of ``corpus``."""
    found: list[tuple[Chunk, str]] = []
    counter = model_token_counter()
    for path in select_files(corpus).files:
        if not path.endswith(".py"):
            continue
        data = (corpus / path).read_bytes()
        analysis = analyze_file(path, data, counter=counter)
        if isinstance(analysis, FileAnalysis):
            sha = hashlib.sha256(data).hexdigest()
            found.extend((chunk, sha) for chunk in analysis.chunks)
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


def _unit(rows: Vectors) -> Vectors:
    unit: Vectors = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return unit


def random_vectors(count: int, seed: int) -> Vectors:
    return _unit(np.random.default_rng(seed).standard_normal((count, DIMENSION)))


def bow_vectors(chunks: Sequence[tuple[Chunk, str]], seed: int) -> Vectors:
    """Sum of a fixed random vector per distinct word of each chunk's lexical text."""
    vocab: dict[str, int] = {}
    ids = [
        [vocab.setdefault(w, len(vocab)) for w in set(lexical_text(c.text).split())]
        for c, _ in chunks
    ]
    table = np.random.default_rng(seed).standard_normal((len(vocab), DIMENSION))
    return _unit(np.stack([table[row].sum(axis=0) for row in ids]))


def stored_batches(
    chunks: Sequence[tuple[Chunk, str]], vectors: Vectors, size: int
) -> list[list[StoredChunk]]:
    stored = [
        StoredChunk(chunk, sha, "bench", cast("Sequence[float]", vectors[i]))
        for i, (chunk, sha) in enumerate(chunks)
    ]
    return [stored[i : i + size] for i in range(0, len(stored), size)]


def timed_copy(dsn: str, rows: Sequence[sql.ChunkRow]) -> float:
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        started = time.perf_counter()
        conn.execute(sql.CREATE_CHUNK_STAGING)
        with conn.cursor() as cur, cur.copy(sql.COPY_CHUNK_STAGING) as copy:
            copy.set_types(list(sql.CHUNK_STAGING_TYPES))
            for row in rows:
                copy.write_row(row)
        elapsed = time.perf_counter() - started
        conn.rollback()
    return elapsed


def timed_upserts(
    store: PgVectorStore,
    repo: RepoRef,
    batches: Sequence[Sequence[StoredChunk]],
    writers: int,
    *,
    defer_index: bool = False,
) -> tuple[float, int]:
    started = time.perf_counter()

    def upsert(batch: Sequence[StoredChunk]) -> int:
        return store.upsert_chunks(repo, batch, defer_index=defer_index)

    with ThreadPoolExecutor(writers) as pool:
        written = sum(pool.map(upsert, batches))
    return time.perf_counter() - started, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--vectors", choices=("bow", "random"), default="bow")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=1, help="threads calling upsert")
    parser.add_argument("--limit", type=int, default=None, help="at most this many chunks")
    parser.add_argument("--without-hnsw", action="store_true", help="drop the HNSW index")
    parser.add_argument("--update", action="store_true", help="also time a full rewrite")
    parser.add_argument(
        "--defer-index",
        action="store_true",
        help="write as a small job's write does: rows wait for the vector index task (0021)",
    )
    parser.add_argument("--dsn", help="admin DSN of a running server (default: start one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    chunks = corpus_chunks(args.corpus, args.limit)

    def make(seed: int) -> Vectors:
        if args.vectors == "bow":
            return bow_vectors(chunks, seed)
        return random_vectors(len(chunks), seed)

    batches = stored_batches(chunks, make(1), args.batch_size)
    total = len(chunks)
    figures: dict[str, object] = {}

    started = time.perf_counter()
    rows = [row for batch in batches for row in sql.chunk_rows(batch, DIMENSION)]
    figures["rows_per_s"] = round(total / (time.perf_counter() - started))

    with contextlib.ExitStack() as stack:
        admin = args.dsn or stack.enter_context(private_postgres())
        dsn = fresh_database(admin)
        figures["copy_per_s"] = round(total / timed_copy(dsn, rows))
        if args.without_hnsw:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP INDEX chunks_embedding_hnsw")
        store = stack.enter_context(PgVectorStore(dsn, dimension=DIMENSION, pool_size=args.writers))
        repo = RepoRef("bench", args.corpus.name.lower())
        store.ensure_repository(repo)
        phases = [("cold", batches), ("replay", batches)]
        if args.update:
            phases.append(("update", stored_batches(chunks, make(2), args.batch_size)))
        for name, phase in phases:
            elapsed, written = timed_upserts(
                store, repo, phase, args.writers, defer_index=args.defer_index
            )
            figures[f"{name}_s"] = round(elapsed, 2)
            figures[f"{name}_per_s"] = round(total / elapsed)
            figures[f"{name}_written"] = written
            # The rows written wait for the HNSW index (migration 0021): the vector
            # index task's work, timed apart (in the pipeline it runs after the job).
            started = time.perf_counter()
            indexed = 0
            while added := store.index_pending(INDEX_BATCH_ROWS):
                indexed += added
            seconds = time.perf_counter() - started
            figures[f"{name}_index_s"] = round(seconds, 2)
            figures[f"{name}_indexed"] = indexed
            figures[f"{name}_with_index_per_s"] = round(total / (elapsed + seconds))
        with psycopg.connect(dsn) as conn:
            server = conn.execute("SHOW server_version").fetchone()
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            pgvector = ext.fetchone()

    result = {
        "corpus": args.corpus.name,
        "chunks": total,
        "content_mb": round(sum(len(c.text.encode()) for c, _ in chunks) / 1e6, 2),
        "vectors": args.vectors,
        "batch_size": args.batch_size,
        "writers": args.writers,
        "hnsw": not args.without_hnsw,
        "defer_index": args.defer_index,
        **figures,
        "postgres": server[0] if server else "?",
        "pgvector": pgvector[0] if pgvector else "?",
        "nproc": os.cpu_count(),
        "loadavg_after": os.getloadavg()[0],
        "cpu": cpu_model(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
