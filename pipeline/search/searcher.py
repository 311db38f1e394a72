"""Hybrid search: the two retrievers, their fusion, and graph expansion of the top hits.

A request (``pipeline.search.query``) is answered in four steps:

1. the lexical retriever starts at once (full text of the query's words, in a thread);
   hits whose symbol the query names (``get_netrc_auth``) move to its top when the
   query is identifier-like (``ranking.lexical_order``);
2. the query is embedded (the caller's ``encode``: the query-embedding cache, then the
   model) and the vector retriever runs;
3. both rankings are fused and re-ranked for code (``pipeline.search.ranking``: fusion
   by scores or reciprocal rank, one place per definition, a boost for files with
   several matches); ``retrievers`` and ``ranks`` say which found a result and where;
4. on request, each result of a named symbol gets its neighbourhood from the graph
   (callers, callees, container). A graph that cannot answer leaves the results without
   it and says so in ``warnings``: the search itself does not fail.

``timings_s`` has the seconds of each step, for metrics and for the benchmark.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.errors import NotFoundError, TransientError
from pipeline.models import GraphSymbol, Hit, RepoRef, SymbolLink
from pipeline.ports import GraphStore, SearchIndex, SnapshotStore
from pipeline.search.query import SearchRequest, check_request, lexical_terms
from pipeline.search.ranking import (
    RRF_K,
    SNIPPET_MAX_CHARS,
    SNIPPET_MAX_LINES,
    Ranking,
    SearchResult,
    fuse,
    lexical_order,
    named_first,
    rank,
    snippet,
)

__all__ = [
    "RRF_K",
    "SNIPPET_MAX_CHARS",
    "SNIPPET_MAX_LINES",
    "Ranking",
    "SearchResponse",
    "SearchResult",
    "Searcher",
    "fuse",
    "named_first",
    "snippet",
]

Vector = npt.NDArray[np.float32]
MAX_CANDIDATES = 1000


@dataclass(slots=True)
class SearchResponse:
    """The answer to one request."""

    request: SearchRequest
    results: list[SearchResult]
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query": self.request.query,
            "mode": self.request.mode,
            "k": self.request.k,
            "results": [r.as_json() for r in self.results],
        }
        if self.request.ref is not None:
            out["ref"] = self.request.ref
        if self.request.commit is not None:
            out["commit"] = self.request.commit
        if self.warnings:
            out["warnings"] = self.warnings
        return out


def candidates_for(k: int) -> int:
    """How many hits each retriever returns for fusion: enough below the top ``k``."""
    return min(MAX_CANDIDATES, max(50, 2 * k))


class Searcher:
    """Runs requests against a :class:`SearchIndex` (and a graph, for expansion).

    ``encode`` turns query text into the vector of ``model_id``. ``ranking`` says how
    hits are ranked (``pipeline.search.ranking``); ``rrf_k`` and ``weights`` (the same
    weights for every query type), when given, replace its fusion settings. Call
    :meth:`close` when done.
    """

    def __init__(
        self,
        index: SearchIndex,
        encode: Callable[[str], Vector],
        model_id: str,
        graph: GraphStore | None = None,
        *,
        rrf_k: int | None = None,
        weights: Mapping[str, float] | None = None,
        ranking: Ranking | None = None,
        links_per_kind: int = 20,
    ) -> None:
        self._index = index
        self._encode = encode
        self._model_id = model_id
        self._graph = graph
        ranking = ranking or Ranking()
        if rrf_k is not None:
            ranking = replace(ranking, rrf_k=rrf_k)
        if weights is not None:
            vector, lexical = weights.get("vector", 1.0), weights.get("lexical", 1.0)
            ranking = replace(
                ranking,
                weight_vector=vector,
                weight_lexical=lexical,
                identifier_weight_vector=vector,
                identifier_weight_lexical=lexical,
            )
        self._ranking = ranking
        self._links_per_kind = links_per_kind
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="quarry-search")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def search(self, request: SearchRequest) -> SearchResponse:
        request = check_request(request)
        missing = self._index.missing_repositories(request.tenant, request.repos)
        if missing:
            raise NotFoundError(f"repo: no repository named {missing[0]!r}")
        if request.ref is not None or request.commit is not None:
            check_held(request, self._index.selected(request))
        timings: dict[str, float] = {}
        limit = candidates_for(request.k)
        lexical: Future[list[Hit]] | None = None
        if "lexical" in request.retrievers:
            lexical = self._pool.submit(self._lexical, request, limit, timings)
        rankings: dict[str, list[Hit]] = {}
        try:
            if "vector" in request.retrievers:
                rankings["vector"] = self._vector(request, limit, timings)
        finally:
            if lexical is not None:
                rankings["lexical"] = lexical.result()
        started = time.perf_counter()
        results = rank(rankings, request.query, request.k, self._ranking)
        timings["fuse"] = time.perf_counter() - started
        response = SearchResponse(request, results, timings)
        if request.expand and results:
            self._expand(response)
            if request.ref is not None or request.commit is not None:
                response.warnings.append(
                    "neighbours come from the code graph of each repository's default ref,"
                    " which may differ from the ref or commit searched"
                )
        return response

    def _vector(self, request: SearchRequest, limit: int, timings: dict[str, float]) -> list[Hit]:
        started = time.perf_counter()
        vector = self._encode(request.query)
        timings["embed"] = time.perf_counter() - started
        started = time.perf_counter()
        hits = self._index.vector_hits(request, vector, self._model_id, limit)
        timings["vector"] = time.perf_counter() - started
        return hits

    def _lexical(self, request: SearchRequest, limit: int, timings: dict[str, float]) -> list[Hit]:
        started = time.perf_counter()
        terms = lexical_terms(request.query)
        hits = self._index.lexical_hits(request, terms, limit) if terms else []
        timings["lexical"] = time.perf_counter() - started
        return lexical_order(hits, request.query, self._ranking)

    def _expand(self, response: SearchResponse) -> None:
        if self._graph is None:
            response.warnings.append("graph expansion is not available on this server")
            return
        started = time.perf_counter()
        wanted = response.request.expand
        by_repo: dict[str, set[str]] = {}
        for result in response.results:
            if result.hit.symbol:
                by_repo.setdefault(result.hit.repo, set()).add(result.hit.symbol)
        graph = self._graph
        tenant = response.request.tenant
        links: dict[str, list[SymbolLink]] = {}
        held: dict[int, list[GraphSymbol]] = {}
        try:
            for repo, names in by_repo.items():
                links[repo] = graph.symbol_links(RepoRef(tenant, repo), sorted(names))
            # A chunk of a module or class that packs several definitions expands
            # through each of them (nested ones too): more reads, of those definitions.
            read = {repo: set(names) for repo, names in by_repo.items()}
            for _ in range(_MAX_NESTED_READS):
                inner = _held_unread(response.results, links, read, held)
                for repo, names in inner.items():
                    more = graph.symbol_links(RepoRef(tenant, repo), sorted(names))
                    links[repo] = links[repo] + more
                    read[repo] |= names
                if not inner:
                    break
        except TransientError as exc:
            response.warnings.append(f"graph expansion failed: {exc}")
            return
        expanded = []
        for index, result in enumerate(response.results):
            repo_links = links.get(result.hit.repo, [])
            if index in held:
                hood = packed_neighbourhood(
                    result.hit, held[index], repo_links, self._links_per_kind
                )
            else:
                hood = neighbourhood(result.hit.symbol, repo_links, self._links_per_kind)
            picked = {kind: hood[kind] for kind in wanted}
            expanded.append(SearchResult(result.hit, result.score, result.ranks, neighbours=picked))
        response.results = expanded
        response.timings_s["graph"] = time.perf_counter() - started


def _held_unread(
    results: Sequence[SearchResult],
    links: Mapping[str, list[SymbolLink]],
    read: Mapping[str, set[str]],
    held: dict[int, list[GraphSymbol]],
) -> dict[str, set[str]]:
    """Fill ``held`` (result index -> the definitions its chunk packs) from ``links``;
    the names among them whose links were not read yet, by repository."""
    unread: dict[str, set[str]] = {}
    for index, result in enumerate(results):
        found = held_definitions(result.hit, links.get(result.hit.repo, []))
        if found:
            held[index] = found
            new = {s.qualified_name for s in found} - read[result.hit.repo]
            if new:
                unread.setdefault(result.hit.repo, set()).update(new)
    return unread


def check_held(request: SearchRequest, selected: Mapping[str, bool]) -> None:
    """NotFoundError when the request's ref or commit selects no snapshot in a repository
    it names, or in any repository of the tenant when it names none (``selected``:
    repository name -> whether it selects one)."""
    if request.commit is not None:
        wanted = f"no ref holds exactly one commit starting with {request.commit!r}"
    else:
        wanted = f"there is no ref {request.ref!r}"
    named = [name for name in request.repos if not selected.get(name, False)]
    if named:
        raise NotFoundError(f"repository {named[0]!r}: {wanted}")
    if not request.repos and selected and not any(selected.values()):
        raise NotFoundError(f"in none of the tenant's repositories: {wanted}")


def symbol_json(symbol: GraphSymbol) -> dict[str, Any]:
    return {
        "qualified_name": symbol.qualified_name,
        "name": symbol.name or symbol.qualified_name.rsplit(".", 1)[-1],
        "kind": symbol.kind,
        "path": symbol.path,
        "start_line": symbol.start_line,
        "end_line": symbol.end_line,
    }


def neighbourhood(qualified_name: str, links: Sequence[SymbolLink], limit: int) -> dict[str, Any]:
    """Callers, callees (at most ``limit`` each, by name) and the container of a symbol."""
    callers, callees, containers = [], [], []
    if qualified_name:
        for link in links:
            into = link.target.qualified_name == qualified_name
            out_of = link.source.qualified_name == qualified_name
            if link.relation == "CALLS" and into:
                callers.append(link.source)
            if link.relation == "CALLS" and out_of:  # a recursive call is both
                callees.append(link.target)
            if link.relation == "CONTAINS" and into:
                containers.append(link.source)

    def listed(symbols: list[GraphSymbol]) -> list[dict[str, Any]]:
        unique = {s.qualified_name: s for s in symbols}
        return [symbol_json(unique[name]) for name in sorted(unique)[:limit]]

    container = listed(containers)
    return {
        "callers": listed(callers),
        "callees": listed(callees),
        "container": container[0] if container else None,
    }


# Reads of nested definitions (class in module, method in class, ...) after the first.
_MAX_NESTED_READS = 3
# Chunk kinds that name one definition: expanded through that definition alone.
_DEFINITION_KINDS = frozenset({"function", "method"})


def held_definitions(hit: Hit, links: Sequence[SymbolLink]) -> list[GraphSymbol]:
    """The definitions under the container (module, class, ...) a chunk is named by that
    the chunk holds whole, as far as ``links`` reach (CONTAINS, nested too): a chunk that
    packs several small definitions; [] for a chunk named by a function or method."""
    if not hit.symbol or hit.kind in _DEFINITION_KINDS:
        return []
    inner: dict[str, GraphSymbol] = {}
    containers = {hit.symbol}
    grew = True
    while grew:
        grew = False
        for link in links:
            target = link.target
            if (
                link.relation == "CONTAINS"
                and link.source.qualified_name in containers
                and target.qualified_name not in inner
                and target.path == hit.path
                and hit.start_line <= target.start_line
                and target.end_line <= hit.end_line
            ):
                inner[target.qualified_name] = target
                containers.add(target.qualified_name)
                grew = True
    return [inner[name] for name in sorted(inner)]


def packed_neighbourhood(
    hit: Hit, held: Sequence[GraphSymbol], links: Sequence[SymbolLink], limit: int
) -> dict[str, Any]:
    """:func:`neighbourhood` of a chunk holding several definitions: the callers and
    callees of each (not those among them), and as container the symbol the chunk is
    named by, or that symbol's own container when the chunk holds it whole."""
    names = {s.qualified_name for s in held}
    callers: dict[str, dict[str, Any]] = {}
    callees: dict[str, dict[str, Any]] = {}
    for symbol in held:
        hood = neighbourhood(symbol.qualified_name, links, limit)
        callers.update((s["qualified_name"], s) for s in hood["callers"])
        callees.update((s["qualified_name"], s) for s in hood["callees"])
    own = next(
        (
            link.source
            for link in links
            if link.relation == "CONTAINS" and link.source.qualified_name == hit.symbol
        ),
        None,
    )
    whole = own is not None and hit.start_line <= own.start_line and own.end_line <= hit.end_line
    container = neighbourhood(hit.symbol, links, limit)["container"] if whole else None
    if not whole and own is not None:
        container = symbol_json(own)
    return {
        "callers": [callers[n] for n in sorted(callers) if n not in names][:limit],
        "callees": [callees[n] for n in sorted(callees) if n not in names][:limit],
        "container": container,
    }


def symbol_graph(
    graph: GraphStore, repo: RepoRef, name: str, *, max_symbols: int = 5
) -> dict[str, Any]:
    """The neighbourhood of the symbols named ``name`` as ``{"nodes", "edges"}``; nodes
    carry ``role`` (``match`` for the named symbols, else ``neighbour``)."""
    name = name.strip()
    if not name or len(name) > 1000 or "\x00" in name:
        raise NotFoundError(f"name: {name[:50]!r} is not a symbol name")
    matches = graph.find_symbols(repo, name, max_symbols)
    if not matches:
        raise NotFoundError(f"name: no symbol {name!r} in repository {repo.name!r}")
    links = graph.symbol_links(repo, [s.qualified_name for s in matches])
    nodes = {s.qualified_name: {**symbol_json(s), "role": "match"} for s in matches}
    edges = set()
    for link in links:
        for end in (link.source, link.target):
            nodes.setdefault(end.qualified_name, {**symbol_json(end), "role": "neighbour"})
        edges.add((link.source.qualified_name, link.target.qualified_name, link.relation))
    return {
        "repo": repo.name,
        "name": name,
        "nodes": [nodes[key] for key in sorted(nodes)],
        "edges": [{"source": s, "target": t, "type": r} for s, t, r in sorted(edges)],
    }


MAX_DIFFERING_SHOWN = 100


def ref_divergence(snapshots: SnapshotStore, repo: RepoRef, ref: str | None) -> dict[str, Any]:
    """What the graph endpoints add for a ref: the graph's own ref (the default ref) and,
    for another ref, the paths (the first MAX_DIFFERING_SHOWN, and how many) whose
    version differs between the two. NotFoundError for a ref the repository lacks."""
    default = snapshots.default_ref(repo)
    if ref is None or ref == default:
        return {"graph_ref": default}
    known = {state.name for state in snapshots.refs(repo)}
    if ref not in known:
        raise NotFoundError(f"ref: repository {repo.name!r} has no ref {ref!r}")
    theirs = snapshots.searchable_files(repo, ref)
    ours = snapshots.searchable_files(repo, default)
    differs = sorted(p for p in theirs.keys() | ours.keys() if theirs.get(p) != ours.get(p))
    return {
        "graph_ref": default,
        "ref": ref,
        "differs": differs[:MAX_DIFFERING_SHOWN],
        "differs_total": len(differs),
    }
