"""Bulk load of the search benchmark's rows into a fresh, migrated database.

One repository with one published snapshot: the ``snapshots`` row is ``ready``,
the repository's default ref (``refs``) holds it, and it lists one ``files`` row per file
(path and content sha256 as the chunk rows have them), since search reads the chunks of
the files of the searchable snapshot only.

Fast path, as a first bulk load of a deployment would be: the HNSW and GIN indexes of
``chunks`` are dropped (their definitions read from ``pg_indexes`` first, so the shipped
ones are rebuilt), the rows go in by the vector store's own statements (binary COPY into
the staging table, then ``pipeline.statements.sql.MERGE_CHUNKS``, which computes the tsvector),
one transaction per batch; then the GIN and HNSW indexes are built again (timed, with
``maintenance_work_mem`` and parallel maintenance workers set for the session) and the
table is vacuumed and analysed.

Must not import: torch, api/.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from bench.search_corpus import RealCorpus
from bench.search_data import SyntheticCorpus, Vectors
from pipeline.models import FileVersion, RepoRef, StoredChunk
from pipeline.statements import sql

# Built again in this order (the full-text postings' index is on lexical_postings, which
# the chunks triggers fill as the rows go in).
REBUILT_INDEXES = ("chunks_tsv", "lexical_postings_impact", "chunks_embedding_hnsw")
DIMENSION = 384


@dataclass(frozen=True)
class BuildOptions:
    """How the dropped indexes are built again; ``hnsw_with`` replaces the HNSW index's
    storage parameters (``m = 24, ef_construction = 128``), None keeps the shipped ones."""

    maintenance_work_mem: str
    workers: int
    hnsw_with: str | None = None
    skip: tuple[str, ...] = ()  # indexes dropped and not built again (a lexical-only run)


def row_batches(
    real: RealCorpus, real_vectors: Vectors, synthetic: SyntheticCorpus, model_id: str
) -> Iterator[list[sql.ChunkRow]]:
    """Every row, in batches: each synthetic batch with its share of the real rows, so
    that those lie all over the table as a repository's files would, not in one block."""
    stored = [
        StoredChunk(chunk, sha, model_id, vector)
        for chunk, sha, vector in zip(real.chunks, real.shas, real_vectors, strict=True)
    ]
    real_rows = sql.chunk_rows(stored, DIMENSION)
    batches = max(1, synthetic.batches)
    parts = np.array_split(np.arange(len(real_rows)), batches)
    for number, part in enumerate(parts):
        rows = [real_rows[i] for i in part]
        if synthetic.count:
            rows += synthetic.rows(synthetic.batch(number), model_id)
        if rows:
            yield rows


def synthetic_files(rows: Sequence[sql.ChunkRow]) -> list[FileVersion]:
    """One file per synthetic path of ``rows`` (whose file sha256 the rows carry)."""
    sizes: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row[1].startswith("synthetic/"):
            sizes[(row[1], row[2])] += len(row[10]) + 1
    return [FileVersion(path, sha, "python", size) for (path, sha), size in sizes.items()]


def load_all(
    dsn: str | None,
    repo: RepoRef,
    *,
    batches: Iterator[list[sql.ChunkRow]],
    real_files: Sequence[FileVersion],
    index: Any,
    build: BuildOptions,
    report: Callable[[str], None],
) -> tuple[list[str], dict[str, Any]]:
    """Load every row, publish the snapshot, build the indexes, and add every vector to
    ``index`` (a FAISS index). Returns the chunk ids in the order of ``index``, and the
    figures. With ``dsn`` None, nothing is written (the rows of a kept database)."""
    ids: list[str] = []
    generate_s = load_s = 0.0
    loader = BenchLoader(dsn, repo) if dsn else None
    files = list(real_files)
    try:
        if loader:
            loader.drop_indexes()
        started = time.perf_counter()
        for rows in batches:
            generate_s += time.perf_counter() - started
            files += synthetic_files(rows)
            if loader:
                load_s += loader.add_chunks(rows)
            vectors = [r[13] for r in rows if r[13] is not None]
            index.add(np.ascontiguousarray(np.stack(vectors), dtype=np.float32))
            ids += [r[0] for r in rows]
            report(f"{'loaded' if loader else 'generated'} {len(ids)} rows")
            started = time.perf_counter()
        figures: dict[str, Any] = {"generate_s": round(generate_s, 1), "files": len(files)}
        if loader:
            loader.add_files(files)
            loader.publish()
            built = loader.build_indexes(build, report)
            figures |= {
                "load_s": round(load_s, 1),
                "load_rows_per_s": round(len(ids) / load_s) if load_s else 0,
                "index_build_s": built.get("chunks_embedding_hnsw"),
                "gin_build_s": built.get("chunks_tsv"),
                "postings_build_s": built.get("lexical_postings_impact"),
                "vacuum_analyze_s": loader.vacuum_analyze(),
                "build_settings": asdict(build),
                "notices": loader.notices[-5:],
            }
    finally:
        if loader:
            loader.close()
    return ids, figures


class BenchLoader:
    """Loads one repository's rows over one connection; :meth:`close` when done."""

    def __init__(self, dsn: str, repo: RepoRef) -> None:
        self._conn = psycopg.connect(dsn, autocommit=True)
        register_vector(self._conn)
        self.notices: list[str] = []
        self._conn.add_notice_handler(lambda d: self.notices.append(str(d.message_primary)))
        self._conn.execute("SET synchronous_commit = off")
        for query in (sql.ensure_tenant(repo), sql.ensure_repository(repo)):
            self._conn.execute(query.text, query.params)
        query = sql.repository_id(repo)
        self.repo_id = int(self._one(query.text, query.params))
        self.snapshot_id = int(
            self._one(
                "INSERT INTO snapshots (repository_id, commit_sha, status, finished_at)"
                " VALUES (%s, 'quarry-bench', 'ready', now()) RETURNING id",
                (self.repo_id,),
            )
        )
        self._definitions: list[tuple[str, str]] = []

    def close(self) -> None:
        self._conn.close()

    def _one(self, text: str, params: Any = None) -> Any:
        row = self._conn.execute(text, params).fetchone()
        if row is None:
            raise RuntimeError(f"no row from {text!r}")
        return row[0]

    def drop_indexes(self) -> None:
        rows = self._conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename IN ('chunks', 'lexical_postings') AND indexname = ANY(%s)",
            (list(REBUILT_INDEXES),),
        ).fetchall()
        found: dict[str, str] = {str(name): str(text) for name, text in rows}
        self._definitions = [(name, found[name]) for name in REBUILT_INDEXES if name in found]
        for name, _ in self._definitions:
            self._conn.execute(f'DROP INDEX "{name}"')

    def add_chunks(self, rows: Sequence[sql.ChunkRow]) -> float:
        """Seconds to COPY and merge ``rows`` (one transaction)."""
        started = time.perf_counter()
        merge = sql.merge_chunks(self.repo_id)
        with self._conn.transaction():
            self._conn.execute(sql.CREATE_CHUNK_STAGING)
            with self._conn.cursor() as cur, cur.copy(sql.COPY_CHUNK_STAGING) as copy:
                copy.set_types(list(sql.CHUNK_STAGING_TYPES))
                for row in rows:
                    copy.write_row(row)
            self._conn.execute(merge.text, merge.params)
        return time.perf_counter() - started

    def add_files(self, files: Sequence[FileVersion]) -> None:
        statement = (
            "COPY files (snapshot_id, repository_id, path, content_sha256, language, size_bytes)"
            " FROM STDIN"
        )
        with self._conn.transaction(), self._conn.cursor() as cur, cur.copy(statement) as copy:
            for f in files:
                copy.write_row((self.snapshot_id, self.repo_id, f.path, f.sha256, f.language,
                                f.size_bytes))  # fmt: skip

    def publish(self) -> None:
        self._conn.execute(
            "INSERT INTO refs (repository_id, name, snapshot_id)"
            " SELECT id, default_ref, %s FROM repositories WHERE id = %s"
            " ON CONFLICT (repository_id, name) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id",
            (self.snapshot_id, self.repo_id),
        )

    def build_indexes(self, build: BuildOptions, report: Callable[[str], None]) -> dict[str, float]:
        """Build the dropped indexes again; seconds per index name."""
        self._conn.execute("SELECT set_config('maintenance_work_mem', %s, false)",
                           (build.maintenance_work_mem,))  # fmt: skip
        self._conn.execute(
            "SELECT set_config('max_parallel_maintenance_workers', %s, false)",
            (str(build.workers),),
        )
        seconds = {}
        for name, shipped in self._definitions:
            if name in build.skip:
                report(f"not building {name}")
                continue
            definition = shipped
            if name == "chunks_embedding_hnsw" and build.hnsw_with:
                head, _, rest = shipped.partition(" WITH (")
                definition = f"{head} WITH ({build.hnsw_with}){rest.partition(')')[2]}"
            report(f"building {name} ...")
            started = time.perf_counter()
            self._conn.execute(definition)
            seconds[name] = round(time.perf_counter() - started, 1)
            report(f"built {name} in {seconds[name]} s")
        return seconds

    def vacuum_analyze(self) -> float:
        started = time.perf_counter()
        self._conn.execute("VACUUM (ANALYZE) chunks")
        self._conn.execute("VACUUM (ANALYZE) lexical_postings")
        self._conn.execute("VACUUM (ANALYZE) lexical_stats")
        self._conn.execute("ANALYZE files")
        return round(time.perf_counter() - started, 1)


def database_figures(dsn: str) -> dict[str, Any]:
    """Table and index sizes (MB), the server's version and pgvector's, and the settings
    that bear on the figures (``jit`` is moot where the server has no LLVM)."""
    settings = ("shared_buffers", "effective_cache_size", "work_mem", "jit",
                "max_parallel_workers_per_gather")  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        sizes = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " WHERE c.relname IN ('chunks', 'files', 'chunks_embedding_hnsw', 'chunks_tsv',"
            " 'chunks_pkey', 'chunks_repository_path', 'lexical_postings',"
            " 'lexical_postings_impact', 'lexical_stats')"
        ).fetchall()
        server = {
            "postgres": conn.execute("SELECT current_setting('server_version')").fetchone(),
            "pgvector": conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone(),
            **{
                name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
                for name in settings
            },
        }
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw'"
        ).fetchone()
        visible = conn.execute(
            "SELECT relname, relallvisible, relpages FROM pg_class"
            " WHERE relname IN ('chunks', 'lexical_postings')"
        ).fetchall()
    return {
        "sizes_mb": {str(name): round(int(size) / 2**20, 1) for name, size in sizes},
        "all_visible_pages": {str(n): f"{int(v)}/{int(p)}" for n, v, p in visible},
        "server": {name: str(row[0]) if row else "?" for name, row in server.items()},
        "hnsw_index": str(index[0]) if index else "?",
    }
