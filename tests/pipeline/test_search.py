"""Hybrid search: fusion, snippets, the Searcher over the in-memory fakes, graph reads.

Pure unit tests: the search index is :class:`InMemorySearchIndex` over the in-memory
vector and snapshot stores, the graph is :class:`InMemoryGraphStore` written with real
``FileGraph`` s of a small Python package, and queries are embedded by a fixed table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.adapters.fakes.search_index import InMemorySearchIndex
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.errors import InvalidInputError, NotFoundError, StoreUnavailableError
from pipeline.models import (
    Chunk,
    ChunkKind,
    FileVersion,
    GraphSymbol,
    Hit,
    RepoRef,
    Span,
    StoredChunk,
    SymbolLink,
)
from pipeline.search.query import SearchFilters, SearchRequest
from pipeline.search.searcher import (
    RRF_K,
    Searcher,
    SearchResponse,
    SearchResult,
    candidates_for,
    fuse,
    named_first,
    neighbourhood,
    snippet,
    symbol_graph,
    symbol_json,
)
from tests.pipeline.graphs import file_graphs

Vector = npt.NDArray[np.float32]
DIM = 8
MODEL = "model-a"
TENANT = "acme"


def hit(chunk_id: str, path: str = "", *, repo: str = "r", line: int = 1, symbol: str = "") -> Hit:
    return Hit(repo, chunk_id, path or f"{chunk_id}.py", line, line + 4,
               symbol or f"m.{chunk_id}", "function", "python", f"def {chunk_id}(): pass",
               0.5)  # fmt: skip


def order(results: Sequence[SearchResult]) -> list[str]:
    return [r.hit.chunk_id for r in results]


# --- fuse -----------------------------------------------------------------------------

A, B, C, D = hit("a"), hit("b"), hit("c"), hit("d")
RANKINGS = {"vector": [A, B, C], "lexical": [B, D]}


def test_fuse_sums_reciprocal_ranks_over_the_retrievers_that_found_a_hit() -> None:
    fused = fuse(RANKINGS, 10)
    assert RRF_K == 10
    assert order(fused) == ["b", "a", "d", "c"]
    assert [r.score for r in fused] == pytest.approx([1 / 12 + 1 / 11, 1 / 11, 1 / 12, 1 / 13])
    assert [r.ranks for r in fused] == [
        {"vector": 2, "lexical": 1},
        {"vector": 1},
        {"lexical": 2},
        {"vector": 3},
    ]
    assert [r.retrievers for r in fused] == [
        ["lexical", "vector"],
        ["vector"],
        ["lexical"],
        ["vector"],
    ]
    assert all(r.neighbours is None for r in fused)
    assert fused[0].hit is B


def test_fuse_weighs_the_retrievers() -> None:
    fused = fuse(RANKINGS, 10, weights={"vector": 2.0})
    assert order(fused) == ["b", "a", "c", "d"]
    assert [r.score for r in fused] == pytest.approx([2 / 12 + 1 / 11, 2 / 11, 2 / 13, 1 / 12])
    muted = fuse(RANKINGS, 10, weights={"lexical": 0.0})
    assert order(muted) == ["a", "b", "c", "d"]
    assert [r.score for r in muted] == pytest.approx([1 / 11, 1 / 12, 1 / 13, 0.0])
    assert muted[3].ranks == {"lexical": 2}, "a weight of 0 still says who found it"


def test_fuse_uses_the_rrf_k_given() -> None:
    fused = fuse(RANKINGS, 10, rrf_k=0)
    assert order(fused) == ["b", "a", "d", "c"]
    assert [r.score for r in fused] == pytest.approx([1.5, 1.0, 0.5, 1 / 3])
    # A large k flattens the ranks: two middling ranks beat one first place.
    flat = fuse({"vector": [A, B], "lexical": [C, B]}, 10, rrf_k=1000)
    assert order(flat) == ["b", "a", "c"]


def test_fuse_keeps_the_best_k() -> None:
    assert order(fuse(RANKINGS, 2)) == ["b", "a"]
    assert order(fuse(RANKINGS, 1)) == ["b"]
    assert len(fuse(RANKINGS, 100)) == 4
    assert fuse({}, 10) == []
    assert fuse({"vector": [], "lexical": []}, 10) == []


def test_fuse_ties_go_to_the_path_and_line_whatever_the_input_order() -> None:
    late, early = hit("x", "z/late.py"), hit("y", "a/early.py")
    one = fuse({"vector": [late], "lexical": [early]}, 10)
    other = fuse({"lexical": [early], "vector": [late]}, 10)
    assert order(one) == order(other) == ["y", "x"]
    assert one[0].score == one[1].score == 1 / 11
    # Swapped ranks give exactly equal sums.
    swapped = fuse({"vector": [late, early], "lexical": [early, late]}, 10)
    assert order(swapped) == ["y", "x"]
    assert swapped[0].score == swapped[1].score
    same_path = [hit("p", "f.py", line=30), hit("q", "f.py", line=2)]
    assert order(fuse({"vector": same_path[:1], "lexical": same_path[1:]}, 10)) == ["q", "p"]
    by_repo = [hit("s", "f.py", repo="zeta"), hit("t", "f.py", repo="alpha")]
    assert order(fuse({"vector": by_repo[:1], "lexical": by_repo[1:]}, 10)) == ["t", "s"]


def test_fuse_ties_on_score_go_to_the_best_single_rank_before_the_path() -> None:
    fillers = [hit(f"f{i}") for i in range(6)]
    both = hit("both", "a.py")  # ranks 4 and 4: 1/4 + 1/4
    once = hit("once", "z.py")  # rank 2 only: 1/2
    fused = fuse(
        {"vector": [*fillers[:3], both], "lexical": [fillers[3], once, fillers[4], both]},
        10,
        rrf_k=0,
    )
    assert fused[0].hit.chunk_id == "f0"
    tied = [r for r in fused if r.hit.chunk_id in ("both", "once")]
    assert tied[0].score == tied[1].score == 0.5
    assert order(tied) == ["once", "both"]


def _filler_ranking(prefix: str, size: int, placed: dict[int, Hit]) -> list[Hit]:
    return [placed.get(rank) or hit(f"{prefix}{rank}") for rank in range(1, size + 1)]


def test_fuse_equal_scores_in_exact_arithmetic_are_ties() -> None:
    # Ranks (4, 25) and (5, 20) with rrf_k 10: 1/14 + 1/35 == 1/15 + 1/30 == 1/10.
    assert Fraction(1, 14) + Fraction(1, 35) == Fraction(1, 15) + Fraction(1, 30)
    first, second = hit("best-rank-4", "z.py"), hit("best-rank-5", "a.py")
    vector = _filler_ranking("v", 25, {4: first, 5: second})
    lexical = _filler_ranking("l", 25, {20: second, 25: first})
    fused = fuse({"vector": vector, "lexical": lexical}, 100)
    tied = [r for r in fused if r.hit.chunk_id.startswith("best")]
    assert [round(r.score, 6) for r in tied] == [0.1, 0.1]
    assert order(tied) == ["best-rank-4", "best-rank-5"]


def test_fuse_keys_hits_by_repository_and_chunk() -> None:
    here, there = hit("same", repo="one"), hit("same", repo="two")
    fused = fuse({"vector": [here, there], "lexical": [there]}, 10)
    assert [(r.hit.repo, r.ranks) for r in fused] == [
        ("two", {"vector": 2, "lexical": 1}),
        ("one", {"vector": 1}),
    ]


def test_fuse_counts_a_hit_once_per_retriever_at_its_best_rank() -> None:
    fused = fuse({"vector": [A, B, A]}, 10)
    assert order(fused) == ["a", "b"]
    assert fused[0].ranks == {"vector": 1}
    assert fused[0].score == pytest.approx(1 / 11)


@pytest.mark.parametrize(
    ("k", "candidates"),
    [(1, 50), (10, 50), (25, 50), (26, 52), (499, 998), (500, 1000), (1000, 1000)],
)
def test_candidates_for(k: int, candidates: int) -> None:
    assert candidates_for(k) == candidates


# --- snippets and JSON ----------------------------------------------------------------


def test_snippet_keeps_sixty_lines_and_four_thousand_characters() -> None:
    lines = [f"line {i}" for i in range(100)]
    assert snippet("\n".join(lines)) == "\n".join(lines[:60])
    assert snippet("x" * 5000) == "x" * 4000
    assert snippet("a\r\nb\n") == "a\nb"
    assert snippet("def f():\n    pass") == "def f():\n    pass"
    assert snippet("") == ""
    wide = "\n".join("y" * 100 for _ in range(50))
    assert snippet(wide) == wide[:4000]


def test_result_json() -> None:
    found = Hit("app", "c1", "src/a.py", 3, 9, "pkg.a.f", "function", "python",
                "def f():\n" + "    x = 1\n" * 80, 0.9)  # fmt: skip
    result = SearchResult(found, 1 / 12 + 1 / 11, {"vector": 2, "lexical": 1})
    assert result.as_json() == {
        "repo": "app",
        "path": "src/a.py",
        "start_line": 3,
        "end_line": 9,
        "symbol": "pkg.a.f",
        "kind": "function",
        "language": "python",
        "score": 0.174242,
        "snippet": snippet(found.content),
        "retrievers": ["lexical", "vector"],
        "ranks": {"lexical": 1, "vector": 2},
        "chunk_id": "c1",
    }
    assert list(result.as_json()["ranks"]) == ["lexical", "vector"]
    assert result.as_json()["snippet"].count("\n") == 59
    headed = Hit("app", "c2", "src/é.py", 1, 2, "pkg.é.g", "function", "python",
                 "src/é.py\npkg.é.g\n\ndef g():\n    return 'é'\n", 0.9,
                 body_bytes=len("def g():\n    return 'é'\n".encode()))  # fmt: skip
    assert SearchResult(headed, 0.5, {"vector": 1}).as_json()["snippet"] == (
        "def g():\n    return 'é'"
    ), "the snippet is the file's own text, without the embedded header"
    hood: dict[str, Any] = {"callers": [], "container": None}
    with_hood = SearchResult(found, 0.5, {"vector": 1}, neighbours=hood)
    assert with_hood.as_json()["neighbours"] == hood


def test_response_json_has_warnings_only_when_there_are_some() -> None:
    request = SearchRequest(tenant=TENANT, query="find me", k=3, mode="lexical")
    result = SearchResult(hit("a"), 0.25, {"lexical": 1})
    response = SearchResponse(request, [result], {"fuse": 0.001})
    assert response.as_json() == {
        "query": "find me",
        "mode": "lexical",
        "k": 3,
        "results": [result.as_json()],
    }
    response.warnings.append("graph expansion is not available on this server")
    assert response.as_json()["warnings"] == ["graph expansion is not available on this server"]


# --- the index and the graph ----------------------------------------------------------

SOURCES = {
    "shop/__init__.py": "",
    "shop/base.py": (
        "class Base:\n    def run(self, value):\n        return helper(value)\n\n"
        "    def size(self):\n        return 1\n\n\ndef helper(x):\n    return x\n"
    ),
    "shop/app.py": (
        "from shop.base import Base, helper\n\n\nclass App(Base):\n"
        "    def run(self, value):\n        return helper(value) + util()\n\n\n"
        "def util():\n    return 2\n"
    ),
}

# path, symbol, kind, text; chunk n gets basis vector n.
CORPUS = [
    ("shop/base.py", "shop.base.helper", ChunkKind.FUNCTION, "def helper(x):\n    return x"),
    ("shop/base.py", "shop.base.Base.run", ChunkKind.METHOD,
     "def run(self, value):\n    return helper(value)"),
    ("shop/app.py", "shop.app.App.run", ChunkKind.METHOD,
     "def run(self, value):\n    return helper(value) + util()"),
    ("shop/app.py", "shop.app.util", ChunkKind.FUNCTION, "def util():\n    return 2"),
    ("README.md", "", ChunkKind.OTHER, "How the shop works"),
]  # fmt: skip
HELPER, BASE_RUN, APP_RUN, UTIL, README = (f"{p}#{n}" for n, (p, *_) in enumerate(CORPUS))


def axis(*weights: float) -> Vector:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(weights)] = weights
    return v / np.linalg.norm(v)


# "shop works": nearest util, then App.run, Base.run, helper; README is orthogonal (last).
QUERIES = {"shop works": axis(1, 2, 3, 4), "!!!": axis(0, 0, 0, 1), "helper": axis(1)}


def publish(vectors: InMemoryVectorStore, snapshots: InMemorySnapshotStore, repo: RepoRef) -> None:
    chunks = []
    for n, (path, symbol, kind, text) in enumerate(CORPUS):
        language = "markdown" if path.endswith(".md") else "python"
        # A header before the file's own text, as the chunker embeds one; ends at the body.
        span = Span(10 * n + 1, 10 * n + 5, 100 * n, 100 * n + len(text.encode()))
        piece = Chunk(f"{path}#{n}", path, language, span, symbol, kind, f"h{n}", 3,
                      f"chunk {n}\n{text}")  # fmt: skip
        chunks.append(StoredChunk(piece, "v1", MODEL, axis(*([0.0] * n), 1.0)))
    vectors.ensure_repository(repo)
    vectors.upsert_chunks(repo, chunks)
    versions = {c.chunk.path: FileVersion(c.chunk.path, "v1", c.chunk.language, 10) for c in chunks}
    snapshots.publish(repo, snapshots.begin(repo, "c1", list(versions.values())))


Stores = tuple[InMemoryVectorStore, InMemorySnapshotStore]


@pytest.fixture
def stores() -> Stores:
    """Two repositories of the same chunks: ``shop`` (with a graph) and ``copy``."""
    vectors = InMemoryVectorStore(dimension=DIM)
    snapshots = InMemorySnapshotStore(vectors)
    publish(vectors, snapshots, RepoRef(TENANT, "shop"))
    publish(vectors, snapshots, RepoRef(TENANT, "copy"))
    return vectors, snapshots


@pytest.fixture
def index(stores: Stores) -> InMemorySearchIndex:
    return InMemorySearchIndex(*stores)


@pytest.fixture
def graph() -> InMemoryGraphStore:
    store = InMemoryGraphStore()
    store.write_files(RepoRef(TENANT, "shop"), file_graphs(SOURCES))
    return store


class Encoder:
    """A fixed vector per query text; counts its calls."""

    def __init__(self, before: Callable[[], None] | None = None) -> None:
        self.calls: list[str] = []
        self._before = before

    def __call__(self, text: str) -> Vector:
        self.calls.append(text)
        if self._before is not None:
            self._before()
        return QUERIES[text]


class DownGraph(InMemoryGraphStore):
    def symbol_links(self, repo: RepoRef, qualified_names: Sequence[str]) -> list[SymbolLink]:
        raise StoreUnavailableError("graph", "bolt://graph:7687 refused the connection")


class SpyGraph(InMemoryGraphStore):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[RepoRef, list[str]]] = []

    def symbol_links(self, repo: RepoRef, qualified_names: Sequence[str]) -> list[SymbolLink]:
        self.asked.append((repo, list(qualified_names)))
        return super().symbol_links(repo, qualified_names)


MakeSearcher = Callable[..., Searcher]


@pytest.fixture
def make_searcher(index: InMemorySearchIndex) -> Iterator[MakeSearcher]:
    made: list[Searcher] = []

    def make(encode: Callable[[str], Vector] | None = None, **kwargs: object) -> Searcher:
        searcher = Searcher(kwargs.pop("index", index), encode or Encoder(), MODEL, **kwargs)  # type: ignore[arg-type]
        made.append(searcher)
        return searcher

    yield make
    for searcher in made:
        searcher.close()


def ask(query: str = "shop works", **kwargs: object) -> SearchRequest:
    kwargs.setdefault("repos", ("shop",))
    return SearchRequest(tenant=TENANT, query=query, **kwargs)  # type: ignore[arg-type]


def ids(response: SearchResponse) -> list[str]:
    return order(response.results)


# --- the Searcher ---------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_hybrid_search_fuses_the_vector_and_lexical_rankings(make_searcher: MakeSearcher) -> None:
    encoder = Encoder()
    response = make_searcher(encoder).search(ask())
    assert encoder.calls == ["shop works"]
    assert ids(response) == [README, UTIL, APP_RUN, BASE_RUN, HELPER]
    assert [r.score for r in response.results] == pytest.approx(
        [1 / 15 + 1 / 11, 1 / 11, 1 / 12, 1 / 13, 1 / 14]
    )
    assert response.results[0].ranks == {"vector": 5, "lexical": 1}
    assert [r.ranks for r in response.results[1:]] == [{"vector": n} for n in range(1, 5)]
    assert {r.hit.repo for r in response.results} == {"shop"}
    assert set(response.timings_s) == {"embed", "vector", "lexical", "fuse"}
    assert all(isinstance(t, float) and t >= 0 for t in response.timings_s.values())
    assert response.warnings == []
    assert all(r.neighbours is None for r in response.results)
    body = response.as_json()["results"]
    assert body[0]["retrievers"] == ["lexical", "vector"]
    assert [r["snippet"] for r in body] == [CORPUS[n][3] for n in (4, 3, 2, 1, 0)], "no header"
    assert response.results[0].hit.content == "chunk 4\nHow the shop works"


@pytest.mark.timeout(10)
def test_k_cuts_the_fused_results(make_searcher: MakeSearcher) -> None:
    assert ids(make_searcher().search(ask(k=2))) == [README, UTIL]


@pytest.mark.timeout(10)
def test_vector_mode_runs_only_the_vector_retriever(make_searcher: MakeSearcher) -> None:
    response = make_searcher().search(ask(mode="vector"))
    assert ids(response) == [UTIL, APP_RUN, BASE_RUN, HELPER, README]
    assert [r.score for r in response.results] == pytest.approx([1 / n for n in range(11, 16)])
    assert all(r.retrievers == ["vector"] for r in response.results)
    assert set(response.timings_s) == {"embed", "vector", "fuse"}


@pytest.mark.timeout(10)
def test_lexical_mode_runs_only_the_lexical_retriever(make_searcher: MakeSearcher) -> None:
    encoder = Encoder()
    response = make_searcher(encoder).search(ask(mode="lexical"))
    assert encoder.calls == [], "no embedding in lexical mode"
    assert ids(response) == [README]
    assert response.results[0].ranks == {"lexical": 1}
    assert response.results[0].score == pytest.approx(1 / 11)
    assert set(response.timings_s) == {"lexical", "fuse"}


@pytest.mark.timeout(10)
def test_a_query_without_words_is_found_by_vector_alone(make_searcher: MakeSearcher) -> None:
    response = make_searcher().search(ask("!!!"))
    assert ids(response)[0] == UTIL
    assert all(r.retrievers == ["vector"] for r in response.results)
    assert "lexical" in response.timings_s


@pytest.mark.timeout(10)
def test_the_searcher_passes_its_weights_and_rrf_k(make_searcher: MakeSearcher) -> None:
    muted = make_searcher(weights={"lexical": 0.0}).search(ask())
    assert ids(muted) == [UTIL, APP_RUN, BASE_RUN, HELPER, README]
    assert muted.results[-1].score == pytest.approx(1 / 15)
    flat = make_searcher(rrf_k=0).search(ask())
    assert [r.score for r in flat.results] == pytest.approx([1 / 5 + 1, 1, 1 / 2, 1 / 3, 1 / 4])


@pytest.mark.timeout(10)
def test_filters_and_repositories_scope_the_search(make_searcher: MakeSearcher) -> None:
    searcher = make_searcher()
    app_only = searcher.search(ask(filters=SearchFilters(path_glob="shop/app.py")))
    assert ids(app_only) == [UTIL, APP_RUN]
    methods = searcher.search(ask(filters=SearchFilters(kinds=("method",))))
    assert ids(methods) == [APP_RUN, BASE_RUN]
    markdown = searcher.search(ask(filters=SearchFilters(languages=("markdown",))))
    assert ids(markdown) == [README]
    assert markdown.results[0].ranks == {"vector": 1, "lexical": 1}
    everywhere = searcher.search(ask(repos=(), k=100))
    assert sorted({r.hit.repo for r in everywhere.results}) == ["copy", "shop"]
    assert (
        ids(everywhere)[::2] == ids(everywhere)[1::2] == [README, UTIL, APP_RUN, BASE_RUN, HELPER]
    )
    first = everywhere.results[0].hit.repo
    assert [r.hit.repo for r in everywhere.results[::2]] == [first] * len(CORPUS)


@pytest.mark.timeout(10)
def test_an_unknown_repository_is_not_found_before_any_work(make_searcher: MakeSearcher) -> None:
    encoder = Encoder()
    with pytest.raises(NotFoundError, match=r"^repo: no repository named 'nope'"):
        make_searcher(encoder).search(ask(repos=("shop", "nope")))
    assert encoder.calls == []
    with pytest.raises(NotFoundError):
        make_searcher().search(SearchRequest(tenant="other", query="shop works", repos=("shop",)))


@pytest.mark.timeout(10)
def test_a_bad_request_is_refused_before_any_work(make_searcher: MakeSearcher) -> None:
    encoder = Encoder()
    with pytest.raises(InvalidInputError, match=r"^k:"):
        make_searcher(encoder).search(ask(k=0))
    with pytest.raises(InvalidInputError, match=r"^q:"):
        make_searcher(encoder).search(ask(""))
    assert encoder.calls == []


class ThreadSpyIndex(InMemorySearchIndex):
    def __init__(self, stores: Stores, started: threading.Event) -> None:
        super().__init__(*stores)
        self.started = started
        self.threads: list[str] = []

    def lexical_hits(self, request: SearchRequest, terms: Sequence[str], limit: int) -> list[Hit]:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        return super().lexical_hits(request, terms, limit)


@pytest.mark.timeout(10)
def test_the_lexical_retriever_runs_while_the_query_is_embedded(
    make_searcher: MakeSearcher, stores: Stores
) -> None:
    started = threading.Event()
    spy = ThreadSpyIndex(stores, started)
    waited: list[bool] = []
    encoder = Encoder(before=lambda: waited.append(started.wait(timeout=3)))
    response = make_searcher(encoder, index=spy).search(ask())
    assert waited == [True], "lexical search had not started while the query was embedded"
    assert spy.threads[0].startswith("quarry-search")
    assert spy.threads[0] != threading.current_thread().name
    assert ids(response)[0] == README


# --- expansion ------------------------------------------------------------------------

HELPER_HOOD: dict[str, Any] = {
    "callers": [
        {"qualified_name": "shop.app.App.run", "name": "run", "kind": "method",
         "path": "shop/app.py", "start_line": 5, "end_line": 6},
        {"qualified_name": "shop.base.Base.run", "name": "run", "kind": "method",
         "path": "shop/base.py", "start_line": 2, "end_line": 3},
    ],
    "callees": [],
    "container": {"qualified_name": "shop.base", "name": "base", "kind": "module",
                  "path": "shop/base.py", "start_line": 1, "end_line": 10},
}  # fmt: skip


def names(hood: dict[str, Any], kind: str) -> list[str]:
    return [s["qualified_name"] for s in hood[kind]]


@pytest.mark.timeout(10)
def test_expansion_gives_each_result_its_callers_callees_and_container(
    make_searcher: MakeSearcher, graph: InMemoryGraphStore
) -> None:
    everything = ("callers", "callees", "container")
    response = make_searcher(graph=graph).search(ask(expand=everything))
    by_id = {r.hit.chunk_id: r.neighbours for r in response.results}
    assert by_id[HELPER] == HELPER_HOOD
    app_run = by_id[APP_RUN]
    assert app_run is not None
    assert names(app_run, "callers") == []
    assert names(app_run, "callees") == ["shop.app.util", "shop.base.helper"]
    assert app_run["container"]["qualified_name"] == "shop.app.App"
    util = by_id[UTIL]
    assert util is not None and names(util, "callers") == ["shop.app.App.run"]
    assert util["container"]["qualified_name"] == "shop.app"
    assert by_id[README] == {"callers": [], "callees": [], "container": None}
    assert ids(response) == [README, UTIL, APP_RUN, BASE_RUN, HELPER], "order unchanged"
    assert response.warnings == []
    assert "graph" in response.timings_s
    assert response.as_json()["results"][-1]["neighbours"] == HELPER_HOOD


@pytest.mark.timeout(10)
def test_expansion_gives_only_the_kinds_asked_for(
    make_searcher: MakeSearcher, graph: InMemoryGraphStore
) -> None:
    response = make_searcher(graph=graph).search(ask(expand=("callers",)))
    assert all(r.neighbours is not None and set(r.neighbours) == {"callers"}
               for r in response.results)  # fmt: skip
    limited = make_searcher(graph=graph, links_per_kind=1).search(ask(expand=("callers",)))
    helper = next(r for r in limited.results if r.hit.chunk_id == HELPER)
    assert helper.neighbours == {"callers": HELPER_HOOD["callers"][:1]}


@pytest.mark.timeout(10)
def test_expansion_asks_the_graph_once_per_repository_with_the_symbols(
    make_searcher: MakeSearcher,
) -> None:
    spy = SpyGraph()
    spy.write_files(RepoRef(TENANT, "shop"), file_graphs(SOURCES))
    response = make_searcher(graph=spy).search(ask(repos=(), k=100, expand=("callers",)))
    symbols = sorted(s for _, s, _, _ in CORPUS if s)
    assert sorted(spy.asked, key=lambda a: a[0].name) == [
        (RepoRef(TENANT, "copy"), symbols),
        (RepoRef(TENANT, "shop"), symbols),
    ]
    copies = [r for r in response.results if r.hit.repo == "copy"]
    assert all(r.neighbours == {"callers": []} for r in copies), "copy has no graph"


@pytest.mark.timeout(10)
def test_expansion_reads_only_the_tenants_graph(make_searcher: MakeSearcher) -> None:
    elsewhere = InMemoryGraphStore()
    elsewhere.write_files(RepoRef("someone-else", "shop"), file_graphs(SOURCES))
    response = make_searcher(graph=elsewhere).search(ask(expand=("callers", "container")))
    assert all(r.neighbours == {"callers": [], "container": None} for r in response.results)


@pytest.mark.timeout(10)
def test_a_graph_that_cannot_answer_leaves_a_warning_not_an_error(
    make_searcher: MakeSearcher,
) -> None:
    plain = make_searcher().search(ask())
    response = make_searcher(graph=DownGraph()).search(ask(expand=("callers", "callees")))
    assert len(response.warnings) == 1
    assert response.warnings[0].startswith("graph expansion failed: ")
    assert response.warnings[0].endswith(
        "graph unavailable: bolt://graph:7687 refused the connection"
    )
    assert all(r.neighbours is None for r in response.results)
    assert ids(response) == ids(plain)
    assert [r.score for r in response.results] == [r.score for r in plain.results]
    assert "graph" not in response.timings_s
    body = response.as_json()
    assert body["warnings"] == response.warnings
    assert all("neighbours" not in r for r in body["results"])


@pytest.mark.timeout(10)
def test_expansion_without_a_graph_is_a_warning(make_searcher: MakeSearcher) -> None:
    response = make_searcher().search(ask(expand=("container",)))
    assert response.warnings == ["graph expansion is not available on this server"]
    assert all(r.neighbours is None for r in response.results)
    assert len(response.results) == len(CORPUS)


@pytest.mark.timeout(10)
def test_no_expansion_without_results(make_searcher: MakeSearcher) -> None:
    nothing = ask(expand=("callers",), filters=SearchFilters(path_glob="nowhere"))
    response = make_searcher(graph=DownGraph()).search(nothing)
    assert response.results == []
    assert response.warnings == []
    assert make_searcher().search(nothing).warnings == []


# --- neighbourhood and symbol graphs --------------------------------------------------


def gs(name: str) -> GraphSymbol:
    return GraphSymbol(name, name.rsplit(".", 1)[-1], "function", "m.py", 1, 2)


def test_neighbourhood_sorts_dedupes_and_limits() -> None:
    links = [
        SymbolLink("CALLS", gs("m.z"), gs("m.f")),
        SymbolLink("CALLS", gs("m.a"), gs("m.f")),
        SymbolLink("CALLS", gs("m.a"), gs("m.f")),
        SymbolLink("CALLS", gs("m.m"), gs("m.f")),
        SymbolLink("CALLS", gs("m.f"), gs("m.g")),
        SymbolLink("CONTAINS", gs("m.Outer"), gs("m.f")),
        SymbolLink("CONTAINS", gs("m.Another"), gs("m.f")),
        SymbolLink("CONTAINS", gs("m.f"), gs("m.f.inner")),
        SymbolLink("INHERITS", gs("m.Sub"), gs("m.f")),
        SymbolLink("CALLS", gs("m.x"), gs("m.y")),
    ]
    hood = neighbourhood("m.f", links, 2)
    assert names(hood, "callers") == ["m.a", "m.m"]
    assert names(hood, "callees") == ["m.g"]
    assert hood["container"]["qualified_name"] == "m.Another"
    assert hood["callers"][0] == symbol_json(gs("m.a"))
    assert neighbourhood("", links, 5) == {"callers": [], "callees": [], "container": None}
    assert neighbourhood("m.f", [], 5) == {"callers": [], "callees": [], "container": None}


def test_symbol_json_names_a_placeholder_by_its_last_part() -> None:
    assert symbol_json(GraphSymbol("os.path.join")) == {
        "qualified_name": "os.path.join",
        "name": "join",
        "kind": "",
        "path": "",
        "start_line": 0,
        "end_line": 0,
    }


def test_symbol_graph_has_the_matches_their_neighbours_and_sorted_edges(
    graph: InMemoryGraphStore,
) -> None:
    found = symbol_graph(graph, RepoRef(TENANT, "shop"), "  helper ")
    assert (found["repo"], found["name"]) == ("shop", "helper")
    assert [(n["qualified_name"], n["role"]) for n in found["nodes"]] == [
        ("shop.app.App.run", "neighbour"),
        ("shop.base", "neighbour"),
        ("shop.base.Base.run", "neighbour"),
        ("shop.base.helper", "match"),
    ]
    assert found["nodes"][3] == {
        "qualified_name": "shop.base.helper",
        "name": "helper",
        "kind": "function",
        "path": "shop/base.py",
        "start_line": 9,
        "end_line": 10,
        "role": "match",
    }
    assert found["nodes"][1] == {**HELPER_HOOD["container"], "role": "neighbour"}
    assert found["edges"] == [
        {"source": "shop.app.App.run", "target": "shop.base.helper", "type": "CALLS"},
        {"source": "shop.base", "target": "shop.base.helper", "type": "CONTAINS"},
        {"source": "shop.base.Base.run", "target": "shop.base.helper", "type": "CALLS"},
    ]


def test_symbol_graph_of_a_short_name_has_every_match(graph: InMemoryGraphStore) -> None:
    repo = RepoRef(TENANT, "shop")
    found = symbol_graph(graph, repo, "run")
    roles = {n["qualified_name"]: n["role"] for n in found["nodes"]}
    assert roles == {
        "shop.app.App": "neighbour",
        "shop.app.App.run": "match",
        "shop.app.util": "neighbour",
        "shop.base.helper": "neighbour",
        "shop.base.Base": "neighbour",
        "shop.base.Base.run": "match",
    }
    assert [n["qualified_name"] for n in found["nodes"]] == sorted(roles)
    edges = [(e["source"], e["target"], e["type"]) for e in found["edges"]]
    assert edges == sorted(edges)
    assert ("shop.base.Base.run", "shop.base.helper", "CALLS") in edges
    one = symbol_graph(graph, repo, "run", max_symbols=1)
    assert [n["qualified_name"] for n in one["nodes"] if n["role"] == "match"] == [
        "shop.app.App.run"
    ]
    exact = symbol_graph(graph, repo, "shop.base.Base.run")
    assert [n["qualified_name"] for n in exact["nodes"] if n["role"] == "match"] == [
        "shop.base.Base.run"
    ]


@pytest.mark.parametrize("name", ["nothing_here", "", "   ", "a\x00b", "x" * 1001])
def test_symbol_graph_of_an_unknown_or_bad_name_is_not_found(
    graph: InMemoryGraphStore, name: str
) -> None:
    with pytest.raises(NotFoundError, match=r"^name: "):
        symbol_graph(graph, RepoRef(TENANT, "shop"), name)


def test_symbol_graph_reads_only_the_repository_asked_for(graph: InMemoryGraphStore) -> None:
    with pytest.raises(NotFoundError, match="'other'"):
        symbol_graph(graph, RepoRef(TENANT, "other"), "helper")


def test_a_recursive_function_is_its_own_caller_and_callee() -> None:
    me = GraphSymbol("m.fact", "fact", "function", "m.py", 1, 4)
    hood = neighbourhood("m.fact", [SymbolLink("CALLS", me, me)], 10)
    assert [s["qualified_name"] for s in hood["callers"]] == ["m.fact"]
    assert [s["qualified_name"] for s in hood["callees"]] == ["m.fact"]


def test_lexical_hits_of_a_symbol_the_query_names_come_first() -> None:
    mock, definition, other = (
        hit("m", "tests/t.py", symbol="tests.t.get_auth_mock"),
        hit("d", "src/u.py", symbol="src.u.get_auth"),
        hit("o", "src/o.py", symbol="src.o.GET_AUTH"),
    )
    ordered = named_first([mock, definition, other], "get_auth for a url")
    assert [h.chunk_id for h in ordered] == ["d", "o", "m"]
    assert named_first([mock, definition], "nothing named") == [mock, definition]
    # a plain word of a sentence names nothing; a one-word query names its word
    plain = hit("p", symbol="m.copy")
    assert named_first([mock, plain], "make a copy of the headers") == [mock, plain]
    assert named_first([mock, plain], "copy") == [plain, mock]
    camel = hit("c", symbol="m.getAuth")
    assert named_first([mock, camel], "where is getAuth called") == [camel, mock]


@pytest.mark.timeout(10)
def test_a_chunk_packing_several_definitions_expands_through_each_of_them(
    make_searcher: MakeSearcher, stores: Stores, graph: InMemoryGraphStore
) -> None:
    """Issue 21: a module chunk holding ``App`` (with ``App.run``) and ``util`` lists their
    callers and callees, not the module's own (empty) neighbourhood."""
    vectors, _ = stores
    text = SOURCES["shop/app.py"]
    start = text.index("class App")
    piece = Chunk("shop/app.py#packed", "shop/app.py", "python",
                  Span(4, 12, start, len(text.encode())), "shop.app", ChunkKind.MODULE, "hp",
                  30, text[start:])  # fmt: skip
    vectors.upsert_chunks(
        RepoRef(TENANT, "shop"), [StoredChunk(piece, "v1", MODEL, axis(1.0, 1.0))]
    )
    everything = ("callers", "callees", "container")
    response = make_searcher(graph=graph).search(ask(expand=everything))
    packed = next(r for r in response.results if r.hit.chunk_id == "shop/app.py#packed")
    hood = packed.neighbours
    assert hood is not None
    # App.run calls helper and util; util is in the chunk, so only helper is listed.
    assert names(hood, "callees") == ["shop.base.helper"]
    assert names(hood, "callers") == []
    assert hood["container"]["qualified_name"] == "shop.app"
    plain = next(r for r in response.results if r.hit.chunk_id == UTIL)
    assert plain.neighbours is not None
    assert names(plain.neighbours, "callers") == ["shop.app.App.run"]
