"""The full-text index of migration 0020 stays exact through every way chunk rows change.

After each write, delete, replay, compaction and cascade, ``lexical_postings`` holds
exactly one posting per (row, word) of ``chunks`` and ``lexical_stats`` sums to a recount
of the rows: no lost or ghost postings, no drifting statistics. Real PostgreSQL only (the
triggers are the thing under test).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.models import Chunk, ChunkKind, RepoRef, Span, StoredChunk
from pipeline.search import bm25
from tests.databases import fresh_pg_database

DIM = 384

POSTINGS_OF_CHUNKS = """
SELECT c.repository_id, u.lexeme, quarry_bm25_impact(t.tf, length(c.tsv)), c.seq, t.tf,
       length(c.tsv)
FROM chunks c, unnest(c.tsv) u, LATERAL (SELECT coalesce(array_length(u.positions, 1), 1) AS tf) t
"""
STATS_OF_CHUNKS = """
SELECT c.repository_id, u.lexeme, count(*), 0 FROM chunks c, unnest(c.tsv) u
GROUP BY c.repository_id, u.lexeme
UNION ALL
SELECT c.repository_id, '', count(*), sum(length(c.tsv)) FROM chunks c GROUP BY c.repository_id
"""
STATS = """
SELECT repository_id, lexeme, sum(df), sum(len) FROM lexical_stats GROUP BY repository_id, lexeme
HAVING sum(df) <> 0 OR sum(len) <> 0
"""


@pytest.fixture(scope="module")
def dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "lexical") as found:
        run(PgMigrationTarget(found))
        yield found


@pytest.fixture
def store(dsn: str) -> Iterator[PgVectorStore]:
    with PgVectorStore(dsn, dimension=DIM) as vs:
        yield vs


@pytest.fixture
def repo(store: PgVectorStore) -> RepoRef:
    ref = RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")
    store.ensure_repository(ref)
    return ref


def chunk(path: str, sha: str, n: int, text: str) -> StoredChunk:
    piece = Chunk(f"{path}#{n}", path, "python", Span(n + 1, n + 2, 0, 9), f"f{n}",
                  ChunkKind.FUNCTION, f"h{path}{n}{sha}{text}", 3, text)  # fmt: skip
    return StoredChunk(piece, sha, "m", None)


def rows(dsn: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [tuple(float(v) if isinstance(v, float) else v for v in r)
                for r in conn.execute(text).fetchall()]  # fmt: skip


def assert_exact(dsn: str) -> None:
    postings = rows(dsn, "SELECT repository_id, lexeme, impact, seq, tf, dl FROM lexical_postings")
    assert sorted(postings) == sorted(rows(dsn, POSTINGS_OF_CHUNKS))
    assert sorted(rows(dsn, STATS)) == sorted(rows(dsn, STATS_OF_CHUNKS))


def delta_rows(dsn: str) -> int:
    return int(rows(dsn, "SELECT count(*) FROM lexical_stats")[0][0])


def test_writes_replays_rewrites_and_deletes_keep_postings_and_statistics_exact(
    dsn: str, store: PgVectorStore, repo: RepoRef
) -> None:
    first = [chunk(f"src/m{i}.py", "v1", n, f"def parse_http_header{i}(line): return {n} line")
             for i in range(3) for n in range(2)]  # fmt: skip
    assert store.upsert_chunks(repo, first) == 6
    assert_exact(dsn)
    before = delta_rows(dsn)
    assert store.upsert_chunks(repo, first) == 0  # a replay writes nothing ...
    assert delta_rows(dsn) == before  # ... and appends no statistics
    # The same keys with other words: the rows are updated in place.
    store.upsert_chunks(repo, [chunk("src/m0.py", "v1", 0, "class Pool: open close open")])
    assert_exact(dsn)
    # A new version, then the old one dropped; a file deleted; a whole-version rewrite.
    store.upsert_chunks(repo, [chunk("src/m1.py", "v2", 0, "def send(request): pass")])
    store.retain_versions(repo, {"src/m1.py": ["v2"]})
    assert_exact(dsn)
    store.delete_files(repo, ["src/m2.py"])
    assert_exact(dsn)
    store.upsert_chunks(repo, [chunk("src/m0.py", "v1", 5, "only row")], whole_versions=True)
    assert_exact(dsn)
    # An update that changes no words (a model's vectors cleared) appends nothing.
    before = delta_rows(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE chunks SET embedding = NULL, model_id = 'other'")
    assert delta_rows(dsn) == before
    assert_exact(dsn)


def test_deltas_are_folded_and_a_deleted_repository_leaves_nothing(
    dsn: str, store: PgVectorStore, repo: RepoRef
) -> None:
    for i in range(70):
        store.upsert_chunks(repo, [chunk(f"f{i}.py", "v1", 0, f"word{i % 7} common text")])
    repo_id = int(rows(dsn, f"SELECT id FROM repositories WHERE name = 'app' "
                            f"AND tenant_id = '{repo.tenant}'")[0][0])  # fmt: skip
    assert_exact(dsn)
    folded = rows(dsn, f"SELECT count(*) FROM lexical_stats WHERE repository_id = {repo_id}"
                       " AND lexeme = ''")  # fmt: skip
    assert folded[0][0] <= 65  # 70 statements, folded once past 64
    # Deleted by the store (chunks first), and by a cascade from repositories.
    other = RepoRef(repo.tenant, "other")
    store.ensure_repository(other)
    store.upsert_chunks(other, [chunk("g.py", "v1", 0, "gone soon")])
    # A row moved to another repository (as bench/search_params.py does) takes its
    # postings and its statistics along.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE chunks SET repository_id = (SELECT id FROM repositories WHERE name ="
            " 'other' AND tenant_id = %s) WHERE repository_id = %s AND path = 'f3.py'",
            (repo.tenant, repo_id),
        )
    assert_exact(dsn)
    store.delete_repository(other)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM repositories WHERE id = %s", (repo_id,))
    left = rows(
        dsn,
        f"SELECT (SELECT count(*) FROM lexical_stats WHERE repository_id = {repo_id}),"
        f" (SELECT count(*) FROM lexical_postings WHERE repository_id = {repo_id})",
    )
    assert left == [(0, 0)]
    assert_exact(dsn)


def test_concurrent_writers_of_one_repository_neither_wait_forever_nor_drift(
    dsn: str, repo: RepoRef
) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with PgVectorStore(dsn, dimension=DIM) as vs:
                for i in range(40):
                    vs.upsert_chunks(repo, [chunk(f"{name}{i}.py", "v1", 0, f"shared word{i}")])
                    if i % 5 == 4:
                        vs.delete_files(repo, [f"{name}{i - 1}.py"])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert_exact(dsn)


def test_the_stored_impact_is_the_weight_the_search_bounds(dsn: str) -> None:
    """quarry_bm25_impact (SQL) and bm25.impact (the pruning's arithmetic) are one
    function: if either changes alone, the bounds no longer hold."""
    pairs = [(tf, dl) for tf in (1, 2, 5, 255) for dl in (1, 10, 64, 500, 5000)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        stored = [
            float(conn.execute("SELECT quarry_bm25_impact(%s, %s)", pair).fetchone()[0])  # type: ignore[index]
            for pair in pairs
        ]
    assert stored == pytest.approx([bm25.impact(tf, dl) for tf, dl in pairs], rel=1e-6)
