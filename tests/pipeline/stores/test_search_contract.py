"""One contract for the search index: the fake, and PostgreSQL with each vector plan.

``postgres-exact`` is the plan of a small table; ``postgres-hnsw-indexed`` forces the
HNSW plan (``exact_max_rows=-1``) with a tiny ``ef_search`` and pgvector 0.8's iterative
index scan (the default ``relaxed_order``), every row written put into the index at once
(``index_pending``, migration 0021); ``postgres-hnsw-noniterative`` the same without the
iterative scan, so that its retry (a larger ``ef``, then exact) is exercised too;
``postgres-hnsw`` the HNSW plan with the rows as a job leaves them, not yet in the index
(found by the exact scan of the rows that wait for it). Every test writes its own tenant.
"""

from __future__ import annotations

import fnmatch
import math
import random
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.search_index import InMemorySearchIndex
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.search_index import PgSearchIndex
from pipeline.adapters.postgres.snapshot_store import PgSnapshotStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.models import Chunk, ChunkKind, FileVersion, RepoRef, Span, StoredChunk
from pipeline.ports import SearchIndex, SnapshotStore, VectorStore
from pipeline.search.query import SearchFilters, SearchRequest, lexical_terms
from pipeline.statements import search_sql
from pipeline.statements.sql import Query
from tests.databases import fresh_pg_database

DIM = 384
MODEL = "model-a"


class Backend:
    def __init__(
        self,
        index: SearchIndex,
        vectors: VectorStore,
        snapshots: SnapshotStore,
        *,
        index_at_once: bool = False,
    ) -> None:
        self.index = index
        self.vectors = vectors
        self.snapshots = snapshots
        self.index_at_once = index_at_once


def drain(vectors: VectorStore) -> None:
    """Every row waiting for the vector index goes in (other tests' rows too)."""
    while vectors.index_pending(10_000):
        pass


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "search") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(
    params=[
        "memory",
        "postgres-exact",
        "postgres-hnsw",
        "postgres-hnsw-indexed",
        "postgres-hnsw-noniterative",
    ]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        vectors = InMemoryVectorStore(dimension=DIM)
        snapshots = InMemorySnapshotStore(vectors)
        yield Backend(InMemorySearchIndex(vectors, snapshots), vectors, snapshots)
        return
    dsn = request.getfixturevalue("pg_dsn")
    options: dict[str, object] = {}
    if request.param.startswith("postgres-hnsw"):
        # -1, not 0: the plan is exact while the table's row estimate (reltuples, -1 or
        # 0 for a table never analysed, read as 0) is at most exact_max_rows.
        options = {"exact_max_rows": -1, "ef_search": 2}
    if request.param == "postgres-hnsw-noniterative":
        options["iterative_scan"] = "off"
    with (
        PgSearchIndex(dsn, dimension=DIM, **options) as index,  # type: ignore[arg-type]
        PgVectorStore(dsn, dimension=DIM) as vs,
        PgSnapshotStore(dsn) as snaps,
    ):
        yield Backend(index, vs, snaps, index_at_once=request.param != "postgres-hnsw")


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def unit(axis: int, tilt: float = 0.0) -> np.ndarray:
    """A unit vector near basis vector ``axis``, tilted towards the last axis."""
    v = np.zeros(DIM, dtype=np.float32)
    v[DIM - 1] = tilt
    v[axis] = 1.0
    return v / np.linalg.norm(v)


def stored(
    path: str,
    sha: str,
    n: int,
    text: str,
    vector: np.ndarray | None,
    *,
    kind: ChunkKind = ChunkKind.FUNCTION,
    language: str = "python",
    model: str = MODEL,
) -> StoredChunk:
    piece = Chunk(f"{path}#{n}", path, language, Span(10 * n + 1, 10 * n + 5, 0, 9),
                  f"mod.f{n}", kind, f"h{path}{n}{sha}", 3, text)  # fmt: skip
    return StoredChunk(piece, sha, model, vector)


def publish(backend: Backend, repo: RepoRef, commit: str, chunks: list[StoredChunk]) -> None:
    backend.vectors.ensure_repository(repo)
    backend.vectors.upsert_chunks(repo, chunks, defer_index=not backend.index_at_once)
    versions = {c.chunk.path: FileVersion(c.chunk.path, c.file_sha256, c.chunk.language, 10)
                for c in chunks}  # fmt: skip
    snapshot = backend.snapshots.begin(repo, commit, list(versions.values()))
    backend.snapshots.publish(repo, snapshot)


CORPUS = [
    ("src/http/headers.py", "def parse_http_header(line): return line.split(':')", 0, 0.0),
    ("src/http/client.py", "class HttpClient: def send(self, request): pass", 1, 0.0),
    ("src/db/pool.py", "def open_pool(dsn): return ConnectionPool(dsn)", 2, 0.0),
    ("src/db/query.py", "def run_query(conn, sql): return conn.execute(sql)", 3, 0.0),
    ("docs/guide_1%.md", "How to parse a header of an HTTP message", 4, 0.0),
]


def seed(backend: Backend, tenant: str, name: str = "app") -> RepoRef:
    repo = RepoRef(tenant, name)
    chunks = [stored(p, "v1", i, text, unit(axis)) for i, (p, text, axis, _) in enumerate(CORPUS)]
    publish(backend, repo, "c1", chunks)
    return repo


def ask(tenant: str, **kwargs: object) -> SearchRequest:
    return SearchRequest(tenant=tenant, query="q", **kwargs)  # type: ignore[arg-type]


def paths(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.path for h in hits]


# --- vector ---------------------------------------------------------------------------


def test_vector_hits_come_nearest_first_with_cosine_scores(backend: Backend, tenant: str) -> None:
    seed(backend, tenant)
    hits = backend.index.vector_hits(ask(tenant), unit(2, 0.1), MODEL, 3)
    assert len(hits) == 3
    assert hits[0].path == "src/db/pool.py"
    assert hits[0].score == pytest.approx(float(unit(2, 0.1) @ unit(2)), abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    first = hits[0]
    assert (first.repo, first.start_line, first.end_line, first.symbol, first.kind) == (
        "app",
        21,
        25,
        "mod.f2",
        "function",
    )
    assert first.content.startswith("def open_pool")


def test_rows_in_the_vector_index_and_rows_waiting_for_it_rank_together(
    backend: Backend, tenant: str
) -> None:
    """Half the rows in the HNSW index, half written after (0021): one ranking, nearest
    first, whatever side each row is on; the same once all are in."""
    repo = RepoRef(tenant, "app")
    backend.vectors.ensure_repository(repo)
    near = [stored(f"n{i}.py", "v1", i, f"def n{i}(): pass", unit(5, 0.1 * i)) for i in range(6)]
    backend.vectors.upsert_chunks(repo, near[0::2])
    publish(backend, repo, "c1", near)  # the odd ones wait (unless indexed at once)
    expected = [f"n{i}.py" for i in range(6)]
    assert paths(backend.index.vector_hits(ask(tenant), unit(5), MODEL, 6)) == expected
    plans = dict(getattr(backend.index, "plans", {}))
    assert paths(backend.index.vector_hits(ask(tenant), unit(5), MODEL, 3)) == expected[:3]
    if isinstance(backend.index, PgSearchIndex) and not backend.index_at_once:
        # The index scan gave its 3 rows (n0, n2, n4): enough, no retry; the waiting
        # n1 ranked among them in the same statement.
        assert backend.index.plans["hnsw"] == plans["hnsw"] + 1
        assert backend.index.plans["exact"] == plans["exact"]
    drain(backend.vectors)
    assert backend.vectors.pending_rows() == 0
    assert paths(backend.index.vector_hits(ask(tenant), unit(5), MODEL, 6)) == expected


def test_rows_waiting_for_the_index_do_not_hide_a_starved_index_scan(
    pg_dsn: str, tenant: str
) -> None:
    """Without iterative scans, an ``ef`` of 1 gives another repository's nearest row,
    which the scope drops: the index scan found nothing of this one. Two waiting rows
    fill the limit; the search must still go on (a larger ``ef``, then exact) and rank
    this repository's indexed row, nearer than both, first."""
    with (
        PgSearchIndex(
            pg_dsn, dimension=DIM, exact_max_rows=-1, ef_search=1, iterative_scan="off"
        ) as index,  # fmt: skip
        PgVectorStore(pg_dsn, dimension=DIM) as vs,
        PgSnapshotStore(pg_dsn) as snaps,
    ):
        backend = Backend(index, vs, snaps, index_at_once=True)
        other = RepoRef(tenant, "other")
        publish(backend, other, "c1", [stored("o.py", "v1", 0, "def o(): pass", unit(9))])
        repo = RepoRef(tenant, "app")
        publish(backend, repo, "c1", [stored("x.py", "v1", 1, "def x(): pass", unit(9, 0.3))])
        backend.index_at_once = False
        backend.vectors.upsert_chunks(repo, [
            stored("w1.py", "v1", 2, "def w1(): pass", unit(9, 0.6)),
            stored("w2.py", "v1", 3, "def w2(): pass", unit(9, 0.9)),
        ], defer_index=True)  # fmt: skip
        snapshot = snaps.begin(repo, "c2", [
            FileVersion(p, "v1", "python", 10) for p in ("x.py", "w1.py", "w2.py")
        ])  # fmt: skip
        snaps.publish(repo, snapshot)
        hits = index.vector_hits(ask(tenant, repos=["app"]), unit(9), MODEL, 2)
        assert paths(hits) == ["x.py", "w1.py"]
        assert index.plans["hnsw_retry"] >= 1


def test_vector_hits_read_only_the_model_asked_for(backend: Backend, tenant: str) -> None:
    repo = RepoRef(tenant, "app")
    publish(backend, repo, "c1", [
        stored("a.py", "v1", 0, "def a(): pass", unit(0)),
        stored("b.py", "v1", 1, "def b(): pass", unit(0), model="model-b"),
        stored("c.py", "v1", 2, "def c(): pass", None),
    ])  # fmt: skip
    assert paths(backend.index.vector_hits(ask(tenant), unit(0), MODEL, 10)) == ["a.py"]
    assert paths(backend.index.vector_hits(ask(tenant), unit(0), "model-b", 10)) == ["b.py"]


def test_only_the_searchable_snapshot_is_seen(backend: Backend, tenant: str) -> None:
    repo = seed(backend, tenant)
    # A new version of pool.py is written but its job has not committed yet.
    backend.vectors.upsert_chunks(
        repo, [stored("src/db/pool.py", "v2", 9, "def new(): x", unit(7))]
    )
    hits = backend.index.vector_hits(ask(tenant), unit(7), MODEL, 10)
    assert "def new" not in " ".join(h.content for h in hits)
    assert paths(backend.index.lexical_hits(ask(tenant), ["new"], 10)) == []
    # Published: the new version replaces the old one; no duplicate of the path.
    snapshot = backend.snapshots.begin(repo, "c2", [
        FileVersion(p, "v2" if p == "src/db/pool.py" else "v1", "python", 10)
        for p, *_ in CORPUS
    ])  # fmt: skip
    backend.snapshots.publish(repo, snapshot)
    hits = backend.index.vector_hits(ask(tenant), unit(7), MODEL, 10)
    assert hits[0].content == "def new(): x"
    assert paths(hits).count("src/db/pool.py") == 1


def test_each_ref_and_each_held_commit_is_searched_on_its_own(
    backend: Backend, tenant: str
) -> None:
    repo = RepoRef(tenant, "app")
    base = [stored("a.py", "v1", 0, "def alpha(): pass", unit(0))]
    publish(backend, repo, "c0ffee1111", base)
    branch = [*base, stored("b.py", "v1", 1, "def beta(): pass", unit(1))]
    backend.vectors.upsert_chunks(repo, branch)
    snapshot = backend.snapshots.begin(repo, "beef002222", [
        FileVersion("a.py", "v1", "python", 10), FileVersion("b.py", "v1", "python", 10)
    ])  # fmt: skip
    backend.snapshots.publish(repo, snapshot, "feature/x", 7)
    assert paths(backend.index.vector_hits(ask(tenant), unit(1), MODEL, 10)) == ["a.py"]
    on_branch = backend.index.vector_hits(ask(tenant, ref="feature/x"), unit(1), MODEL, 10)
    assert paths(on_branch) == ["b.py", "a.py"]
    assert paths(backend.index.lexical_hits(ask(tenant, ref="feature/x"), ["beta"], 10)) == ["b.py"]
    assert paths(backend.index.lexical_hits(ask(tenant), ["beta"], 10)) == []
    as_of = backend.index.vector_hits(ask(tenant, commit="beef002"), unit(1), MODEL, 10)
    assert paths(as_of) == ["b.py", "a.py"]
    assert backend.index.selected(ask(tenant, ref="feature/x")) == {"app": True}
    assert backend.index.selected(ask(tenant, ref="nope")) == {"app": False}
    assert backend.index.selected(ask(tenant, commit="c0ffee1")) == {"app": True}
    assert backend.index.selected(ask(tenant, commit="ffffff1")) == {"app": False}
    assert backend.index.vector_hits(ask(tenant, ref="nope"), unit(1), MODEL, 10) == []
    other = f"{tenant}x"
    assert backend.index.selected(ask(other, ref="feature/x")) == {}


def test_a_repository_without_a_searchable_snapshot_finds_nothing(
    backend: Backend, tenant: str
) -> None:
    repo = RepoRef(tenant, "app")
    backend.vectors.ensure_repository(repo)
    backend.vectors.upsert_chunks(repo, [stored("a.py", "v1", 0, "def a(): pass", unit(0))])
    backend.snapshots.begin(repo, "c1", [FileVersion("a.py", "v1", "python", 10)])
    assert backend.index.vector_hits(ask(tenant), unit(0), MODEL, 10) == []
    assert backend.index.lexical_hits(ask(tenant), ["a"], 10) == []


# --- lexical --------------------------------------------------------------------------


def test_lexical_hits_match_identifier_words_and_rank_more_words_first(
    backend: Backend, tenant: str
) -> None:
    seed(backend, tenant)
    hits = backend.index.lexical_hits(ask(tenant), lexical_terms("parse the http header"), 10)
    assert set(paths(hits)) == {"src/http/headers.py", "docs/guide_1%.md", "src/http/client.py"}
    assert paths(hits)[-1] == "src/http/client.py"  # holds only "http"
    # A whole identifier's words match one by one; the rows holding all three come first.
    whole = backend.index.lexical_hits(ask(tenant), ["parse_http_header"], 10)
    assert set(paths(whole)[:2]) == {"src/http/headers.py", "docs/guide_1%.md"}
    assert paths(whole)[2:] == ["src/http/client.py"]


def zipf_text(rng: random.Random, words: int) -> list[str]:
    """Words of a vocabulary of 400 with Zipf-like frequencies (w0 the most common)."""
    return [f"w{min(399, int(rng.paretovariate(1.1)) - 1)}" for _ in range(words)]


def bm25_top(
    every: list[list[str]], visible: list[tuple[str, int, list[str]]], query: list[str], k: int
) -> list[tuple[str, float]]:
    """BM25 (k1 1.2, b 0.75) written out: N, df and the mean length over ``every`` row of
    the repositories searched, lengths in distinct words; the best ``k`` of ``visible``
    (path, start line, words) by score, then path, then line."""
    n = len(every)
    avgdl = sum(len(set(words)) for words in every) / n
    df = {q: sum(1 for words in every if q in words) for q in query}
    scored = []
    for path, line, words in visible:
        dl = len(set(words))
        score = sum(
            math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
            * words.count(q) * 2.2 / (words.count(q) + 1.2 * (0.25 + 0.75 * dl / avgdl))
            for q in query if q in words
        )  # fmt: skip
        if score > 0:
            scored.append((score, path, line))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    return [(f"{path}:{line}", score) for score, path, line in scored[:k]]


@pytest.mark.parametrize("scored_per_posting", [1, 10**9], ids=["by-tsvector", "by-postings"])
def test_lexical_hits_are_the_exact_bm25_top_k(
    backend: Backend, tenant: str, scored_per_posting: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two repositories searched together, one with an older version of every file still
    stored (counted in the statistics, never returned): the hits are exactly the BM25
    top k, and PostgreSQL reaches them by pruning (a threshold from the seed), whichever
    way it scores the rows it keeps."""
    monkeypatch.setattr(search_sql, "SCORED_PER_POSTING", scored_per_posting)
    rng = random.Random(20)
    every: list[list[str]] = []
    visible: list[tuple[str, int, list[str]]] = []
    for name in ("one", "two"):
        repo = RepoRef(tenant, name)
        backend.vectors.ensure_repository(repo)
        for version in ("v1", "v2"):
            chunks, files = [], []
            for f in range(60):
                path = f"{name}/m{f}.py"
                for n in range(3):
                    words = zipf_text(rng, rng.randint(5, 120))
                    every.append(words)
                    chunks.append(stored(path, version, n, " ".join(words), unit(n)))
                    if version == "v2":
                        visible.append((path, 10 * n + 1, words))
                files.append(FileVersion(path, version, "python", 10))
            backend.vectors.upsert_chunks(repo, chunks)
        snapshot = backend.snapshots.begin(repo, "c2", files)
        backend.snapshots.publish(repo, snapshot)
    for query in (["w0", "w3", "w40"], ["w1", "w2", "w7", "w90", "w300"], ["w5"], ["w399"]):
        want = bm25_top(every, visible, query, 10)
        hits = backend.index.lexical_hits(ask(tenant), query, 10)
        assert [f"{h.path}:{h.start_line}" for h in hits] == [at for at, _ in want], query
        assert [h.score for h in hits] == pytest.approx([s for _, s in want], rel=1e-6)
    if isinstance(backend.index, PgSearchIndex):
        assert backend.index.plans["lexical_pruned"] >= 3
    # Filters that the best postings of each word mostly miss (a threshold from the rows
    # matching within them), and one that leaves fewer than k rows (every one of them).
    for glob, query in (("two/m5*", ["w0", "w3", "w40"]), ("one/m7.py", ["w0", "w1", "w9"])):
        kept = [v for v in visible if fnmatch.fnmatch(v[0], glob)]
        want = bm25_top(every, kept, query, 10)
        hits = backend.index.lexical_hits(
            ask(tenant, filters=SearchFilters(path_glob=glob)), query, 10
        )
        assert [f"{h.path}:{h.start_line}" for h in hits] == [at for at, _ in want], glob
        assert [h.score for h in hits] == pytest.approx([s for _, s in want], rel=1e-6)
    if isinstance(backend.index, PgSearchIndex):
        assert backend.index.plans["lexical_seed_only"] >= 1
        assert backend.index.plans["lexical_seed_matches"] >= 2


def test_another_tenants_rows_change_neither_lexical_hits_nor_scores(
    backend: Backend, tenant: str
) -> None:
    """BM25's statistics are the searched repositories' own: a hostile tenant that
    writes thousands of rows of the same words (to learn, from score changes, what
    another tenant's code holds, or to bury its hits) changes nothing there."""
    seed(backend, tenant)
    terms = lexical_terms("parse the http header")
    before = [(h.path, h.score) for h in backend.index.lexical_hits(ask(tenant), terms, 10)]
    other = RepoRef(f"{tenant}x", "app")
    flood = [stored(f"f{i}.py", "v1", i, "parse http header " * (1 + i % 3), unit(0))
             for i in range(200)]  # fmt: skip
    publish(backend, other, "c1", flood)
    after = [(h.path, h.score) for h in backend.index.lexical_hits(ask(tenant), terms, 10)]
    assert after == before
    assert len(backend.index.lexical_hits(ask(other.tenant), terms, 10)) == 10


def test_lexical_terms_with_query_syntax_are_only_words(backend: Backend, tenant: str) -> None:
    seed(backend, tenant)
    for terms in (["a'b"], ["x|y", "!"], ["pool:*"], ["'", "\\"], ["&", "(", ")"], ["<->"]):
        assert isinstance(backend.index.lexical_hits(ask(tenant), terms, 5), list)
    assert paths(backend.index.lexical_hits(ask(tenant), ["pool:*", "pool"], 5)) == [
        "src/db/pool.py"
    ]


# --- filters and scope ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (SearchFilters(path_glob="src/http"), {"src/http/headers.py", "src/http/client.py"}),
        (SearchFilters(path_glob="src/*y.py"), {"src/db/query.py"}),
        (SearchFilters(path_glob="./src/db/pool.py"), {"src/db/pool.py"}),
        (SearchFilters(path_glob="src/d?/p*"), {"src/db/pool.py"}),
        (SearchFilters(path_glob="docs/guide_1%.md"), {"docs/guide_1%.md"}),
        (SearchFilters(path_glob="docs/guide_1_.md"), set()),
        (SearchFilters(path_glob="src/htt"), set()),
        (SearchFilters(languages=("markdown",)), {"docs/guide_1%.md"}),
        (SearchFilters(kinds=("other",)), {"docs/guide_1%.md"}),
        (SearchFilters(languages=("python",), kinds=("class",)), {"src/http/client.py"}),
    ],
)
def test_filters_apply_to_both_retrievers(
    backend: Backend, tenant: str, filters: SearchFilters, expected: set[str]
) -> None:
    repo = RepoRef(tenant, "app")
    chunks = []
    for i, (path, text, axis, _) in enumerate(CORPUS):
        markdown = path.endswith(".md")
        kind = (
            ChunkKind.OTHER
            if markdown
            else ChunkKind.CLASS
            if "class" in text
            else ChunkKind.FUNCTION
        )
        language = "markdown" if markdown else "python"
        chunks.append(stored(path, "v1", i, text, unit(axis, 0.5), kind=kind, language=language))
    publish(backend, repo, "c1", chunks)
    request = ask(tenant, filters=filters)
    assert set(paths(backend.index.vector_hits(request, unit(DIM - 1), MODEL, 10))) == expected
    every_word = ["def", "class", "how"]
    assert set(paths(backend.index.lexical_hits(request, every_word, 10))) == expected


def test_every_read_is_scoped_to_the_tenant_and_the_named_repositories(
    backend: Backend, tenant: str
) -> None:
    seed(backend, tenant, "one")
    seed(backend, tenant, "two")
    other = f"u{tenant[1:]}"
    seed(backend, other, "one")
    everything = backend.index.vector_hits(ask(tenant), unit(0), MODEL, 100)
    assert sorted({h.repo for h in everything}) == ["one", "two"]
    assert len(everything) == 2 * len(CORPUS)
    only_two = backend.index.lexical_hits(ask(tenant, repos=("two",)), ["pool"], 10)
    assert [(h.repo, h.path) for h in only_two] == [("two", "src/db/pool.py")]
    assert backend.index.vector_hits(ask("nobody"), unit(0), MODEL, 10) == []
    assert backend.index.missing_repositories(tenant, ["one", "three", "two"]) == ["three"]
    assert backend.index.missing_repositories(tenant, []) == []
    assert backend.index.missing_repositories("nobody", ["one"]) == ["one"]


def test_limit_is_honoured_when_filters_leave_few_rows(backend: Backend, tenant: str) -> None:
    repo = RepoRef(tenant, "big")
    chunks = [stored(f"f{i:03}.py", "v1", i, f"def f{i}(): pass", unit(i % 50, i / 100))
              for i in range(120)]  # fmt: skip
    chunks.append(stored("rare.rs", "v1", 999, "fn rare() {}", unit(3), language="rust"))
    publish(backend, repo, "c1", chunks)
    request = ask(tenant, filters=SearchFilters(languages=("rust",)))
    assert paths(backend.index.vector_hits(request, unit(40), MODEL, 5)) == ["rare.rs"]
    assert len(backend.index.vector_hits(ask(tenant), unit(40), MODEL, 30)) == 30


def test_a_hit_knows_its_body_without_the_embedded_header(backend: Backend, tenant: str) -> None:
    repo = RepoRef(tenant, "app")
    body = "def greet():\n    return 'héllo'\n"
    span = Span(3, 4, 10, 10 + len(body.encode()))
    text = "src/g.py\ng.greet\n\n" + body
    piece = Chunk("g#1", "src/g.py", "python", span, "g.greet", ChunkKind.FUNCTION, "hg", 9, text)
    publish(backend, repo, "c1", [StoredChunk(piece, "v1", MODEL, unit(5))])
    (hit,) = backend.index.vector_hits(ask(tenant), unit(5), MODEL, 1)
    assert hit.content.startswith("src/g.py\ng.greet") and hit.body == body
    (word,) = backend.index.lexical_hits(ask(tenant), ["greet"], 1)
    assert word.body == body


def test_a_lexical_search_past_its_budget_answers_its_seed_and_the_pool_stays_usable(
    pg_dsn: str, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact part of a full-text search that outlives QUARRY_SEARCH_LEXICAL_BUDGET_MS
    is cancelled by PostgreSQL (statement_timeout in a savepoint): the answer is the
    seed's hits, and the connection goes back to the pool fine."""
    with (
        PgSearchIndex(
            pg_dsn, dimension=DIM, lexical_seed=1, lexical_budget_ms=50, pool_size=1
        ) as index,
        PgVectorStore(pg_dsn, dimension=DIM) as vs,
        PgSnapshotStore(pg_dsn) as snaps,
    ):
        backend = Backend(index, vs, snaps)
        seed(backend, tenant)
        terms = lexical_terms("parse the http header")
        full = index.lexical_hits(ask(tenant), terms, 2)
        every = {h.chunk_id: h.score for h in index.lexical_hits(ask(tenant), terms, 10)}
        slow = Query("SELECT pg_sleep(2)", {})
        monkeypatch.setattr(search_sql, "lexical_rest", lambda *a, **k: slow)
        cut = index.lexical_hits(ask(tenant), terms, 2)
        assert index.plans["lexical_budget"] == 1
        assert cut  # the seed's rows, with their exact scores
        assert [h.score for h in cut] == pytest.approx([every[h.chunk_id] for h in cut])
        monkeypatch.undo()
        assert [h.path for h in index.lexical_hits(ask(tenant), terms, 2)] == paths(full)
