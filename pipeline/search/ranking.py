"""Ranking after retrieval: the fusion of the retrievers' rankings and what code adds.

The lexical hits come in through :func:`lexical_order` (hits whose symbol the query
names first, for identifier-like queries). Given each retriever's hits, :func:`rank`
gives the results of a request, best first:

1. fusion of the retrievers' rankings: by their scores (:func:`fuse_scores`: each
   retriever's scores scaled to [0, 1], weighted, summed) or by reciprocal rank
   (:func:`fuse`: the sum of ``weight / (rrf_k + rank)``); the weights depend on the
   query's type (:func:`fusion_weights`: identifier-like queries vs sentences);
2. code-aware adjustments of that score (each off at 0): a chunk that defines a name
   the query spells as an identifier gains ``name_boost`` (:func:`defines_named`); a
   chunk in a test, mock, example, vendored or generated path is scaled by
   ``1 - path_penalty`` (:func:`secondary_path`); a chunk gains ``file_boost`` times the
   score of the best other chunk of its file (:func:`file_scores`);
3. the chunks of one definition (same path and symbol, overlapping or adjacent lines)
   become one result, the best of them (:func:`merge_definitions`).

Every function here is pure: no I/O. ``bench/ranking_replay.py`` replays stored
rankings through :func:`rank` to choose the settings (``bench/results/eval.md``).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.models import Hit
from pipeline.search.lexical import identifier_parts
from pipeline.search.query import STOP_WORDS

RRF_K = 10  # see config.settings search_rrf_k
SNIPPET_MAX_LINES = 60
SNIPPET_MAX_CHARS = 4000
_WORD = re.compile(r"\w+")
_CAMEL = re.compile(r"[a-z0-9][A-Z]")
_TOKEN = re.compile(r"[A-Za-z_][\w.:]*(?:\(\))?|\S+")

# Folders and file names of code that is not the definition a reader looks for: tests,
# mocks, examples, vendored and generated code. Matched on path parts, lower-cased.
SECONDARY_DIRS = frozenset(
    {
        "test",
        "tests",
        "testing",
        "testdata",
        "__tests__",
        "spec",
        "specs",
        "mock",
        "mocks",
        "__mocks__",
        "fixtures",
        "example",
        "examples",
        "demo",
        "demos",
        "vendor",
        "vendored",
        "third_party",
        "thirdparty",
        "node_modules",
        "generated",
        "gen",
        "dist",
        "build",
    }
)
_SECONDARY_FILE = re.compile(
    r"(^test_.*\.py|.*_test\.\w+|.*_tests\.\w+|.*\.(test|spec)\.\w+"
    r"|.*_mock\.\w+|^mock_.*|.*\.mock\.\w+|.*_pb2(_grpc)?\.py|.*\.pb\.go|.*_generated\.\w+"
    r"|.*\.gen\.\w+|.*\.min\.js|conftest\.py)$"
)
# JVM and .NET tests by their case: FooTest.java, FooTests.cs, TestFoo.kt (not Contest.java).
_SECONDARY_CLASS_FILE = re.compile(r"(.*[a-z0-9]Tests?|Test[A-Z]\w*)\.(java|kt|cs)")


@dataclass(frozen=True, slots=True)
class Ranking:
    """How retrieved hits are ranked. These defaults are plain reciprocal rank fusion
    with nothing added; the API's come from ``config.settings`` (``search_*``, chosen on
    the tuning half: ``bench/results/eval.md``, "Ranking changes")."""

    fusion: Literal["rrf", "scores"] = "rrf"  # see fuse_scores
    rrf_k: int = RRF_K
    weight_vector: float = 1.0
    weight_lexical: float = 1.0
    # (d) query type: at or above this share of identifier-shaped tokens a query is
    # identifier-like and takes the identifier weights below.
    identifier_share: float = 0.5
    identifier_weight_vector: float = 1.0
    identifier_weight_lexical: float = 1.0
    name_boost: float = 0.0  # (b)
    symbol_words_boost: float = 0.0  # (b') share of the symbol's words in the query
    path_penalty: float = 0.0  # (c)
    file_boost: float = 0.0  # (e)
    merge_definitions: bool = False  # (a)
    # Named symbols first in the lexical list (named_first) for queries whose
    # identifier_share reaches this (0.0: every query, as before).
    named_first_share: float = 0.0


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One fused result; ``neighbours`` only when expansion was asked for."""

    hit: Hit
    score: float
    ranks: dict[str, int]
    neighbours: dict[str, Any] | None = None

    @property
    def retrievers(self) -> list[str]:
        return sorted(self.ranks)

    def as_json(self) -> dict[str, Any]:
        hit = self.hit
        out: dict[str, Any] = {
            "repo": hit.repo,
            "path": hit.path,
            "start_line": hit.start_line,
            "end_line": hit.end_line,
            "symbol": hit.symbol,
            "kind": hit.kind,
            "language": hit.language,
            "score": round(self.score, 6),
            "snippet": snippet(hit.body),
            "retrievers": self.retrievers,
            "ranks": dict(sorted(self.ranks.items())),
            "chunk_id": hit.chunk_id,
        }
        if self.neighbours is not None:
            out["neighbours"] = self.neighbours
        return out


def snippet(content: str) -> str:
    """The chunk's text, cut at :data:`SNIPPET_MAX_LINES` lines / ``_CHARS`` characters."""
    lines = content.splitlines()
    text = "\n".join(lines[:SNIPPET_MAX_LINES])
    if len(text) > SNIPPET_MAX_CHARS:
        text = text[:SNIPPET_MAX_CHARS]
    return text


def _order(result: SearchResult) -> tuple[float, int, str, str, int]:
    # Rounded: sums equal on paper (1/14 + 1/35 == 1/15 + 1/30) may differ in the last bit.
    return (
        -round(result.score, 12),
        min(result.ranks.values()),
        result.hit.repo,
        result.hit.path,
        result.hit.start_line,
    )


def fuse(
    rankings: Mapping[str, Sequence[Hit]],
    k: int | None,
    *,
    rrf_k: int = RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[SearchResult]:
    """Reciprocal rank fusion of the retrievers' rankings, the best ``k`` first (all
    when ``k`` is None).

    Ties (same fused score) keep the order of the best single rank, then the path and
    line, so that equal inputs give equal outputs.
    """
    found: dict[tuple[str, str], tuple[Hit, dict[str, int]]] = {}
    for retriever, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            key = (hit.repo, hit.chunk_id)
            entry = found.setdefault(key, (hit, {}))
            entry[1].setdefault(retriever, rank)
    scored = []
    for hit, ranks in found.values():
        score = sum((weights or {}).get(r, 1.0) / (rrf_k + rank) for r, rank in ranks.items())
        scored.append(SearchResult(hit, score, ranks))
    scored.sort(key=_order)
    return scored if k is None else scored[:k]


def ordered_scores(scores: Sequence[float]) -> list[float]:
    """Scores made to follow their list's order, spacing kept: walking up from the
    bottom, a score below the one after it is lifted to it, and so is every score above
    by as much. A list in score order is unchanged; a block that :func:`named_first`
    moved to the top keeps its inner spacing and sits just above the rest."""
    out = list(scores)
    lift = 0.0
    for i in range(len(out) - 2, -1, -1):
        out[i] += lift
        if out[i] < out[i + 1]:
            lift += out[i + 1] - out[i]
            out[i] = out[i + 1]
    return out


def fuse_scores(
    rankings: Mapping[str, Sequence[Hit]],
    *,
    weights: Mapping[str, float] | None = None,
) -> list[SearchResult]:
    """Fusion by the retrievers' own scores: each retriever's scores scaled to [0, 1]
    over its hits (min-max; all 1.0 when they are equal), a chunk's score the weighted
    sum over the retrievers that found it; best first, ties as in :func:`fuse`.

    Unlike ranks, scaled scores keep how far apart the hits are: a chunk far ahead in
    one retriever stays ahead of chunks that both retrievers found but ranked low.

    The retriever's order stands (:func:`ordered_scores`), so hits that
    :func:`named_first` moved up keep their place.
    """
    found: dict[tuple[str, str], tuple[Hit, dict[str, int], list[float]]] = {}
    for retriever, hits in rankings.items():
        if not hits:
            continue
        weight = (weights or {}).get(retriever, 1.0)
        ordered = ordered_scores([h.score for h in hits])
        low, high = ordered[-1], ordered[0]
        for rank, (hit, value) in enumerate(zip(hits, ordered, strict=True), start=1):
            scaled = (value - low) / (high - low) if high > low else 1.0
            entry = found.setdefault((hit.repo, hit.chunk_id), (hit, {}, [0.0]))
            if retriever not in entry[1]:
                entry[1][retriever] = rank
                entry[2][0] += weight * scaled
    scored = [SearchResult(hit, total[0], ranks) for hit, ranks, total in found.values()]
    scored.sort(key=_order)
    return scored


def query_names(query: str) -> set[str]:
    """The names a query spells (lower-cased): words shaped like an identifier
    (``snake_case``, ``camelCase``, ``Router.ServeHTTP``'s parts), or the query's only
    word. Plain words of a sentence ("get", "copy") name too many methods to count."""
    words = _WORD.findall(query)
    return {w.lower() for w in words if len(words) == 1 or "_" in w.strip("_") or _CAMEL.search(w)}


def identifier_share(query: str) -> float:
    """The share of the query's whitespace-separated tokens shaped like code: with
    ``_``, inner capitals, ``.``/``::`` between names, or ``()`` (0.0 for no tokens; 1.0
    for a one-token query, which names something)."""
    tokens = query.split()
    if not tokens:
        return 0.0
    if len(tokens) == 1:
        return 1.0
    coded = 0
    for token in tokens:
        bare = token.strip("`'\",;:!?")
        if (
            "_" in bare.strip("_")
            or _CAMEL.search(bare)
            or "()" in bare
            or re.search(r"\w(\.|::)\w", bare)
        ):
            coded += 1
    return coded / len(tokens)


def fusion_weights(query: str, ranking: Ranking) -> dict[str, float]:
    """The retrievers' weights for this query: the identifier weights for a query whose
    :func:`identifier_share` reaches ``ranking.identifier_share``, else the plain ones."""
    if identifier_share(query) >= ranking.identifier_share:
        return {
            "vector": ranking.identifier_weight_vector,
            "lexical": ranking.identifier_weight_lexical,
        }
    return {"vector": ranking.weight_vector, "lexical": ranking.weight_lexical}


def named_first(hits: Sequence[Hit], query: str) -> list[Hit]:
    """``hits`` with those whose symbol the query names first, otherwise in their order.

    BM25 sees ``get_netrc_auth`` only as ``get netrc auth`` (PostgreSQL splits words at
    ``_``), so a test that mocks it can outrank its definition (:func:`query_names`)."""
    names = query_names(query)
    if not names:
        return list(hits)
    return sorted(hits, key=lambda h: not defines_named(h, names))


def lexical_order(hits: Sequence[Hit], query: str, ranking: Ranking) -> list[Hit]:
    """The lexical hits as fusion gets them: :func:`named_first` when the query is
    identifier-like enough (``ranking.named_first_share``), else as BM25 ranked them."""
    if identifier_share(query) >= ranking.named_first_share:
        return named_first(hits, query)
    return list(hits)


def defines_named(hit: Hit, names: set[str]) -> bool:
    """Whether the hit's symbol, or its last component, is one of ``names`` (lower-case)."""
    symbol = hit.symbol.lower()
    if not symbol:
        return False
    return symbol in names or re.split(r"\.|::|#", symbol)[-1] in names


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ing", "es", "ed", "e", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def query_words(query: str) -> set[str]:
    """The query's words, identifiers split into their parts, stop words dropped, each
    cut to a crude stem (``parses`` -> ``pars``, ``parse`` -> ``parse``)."""
    words = {part for w in _WORD.findall(query) for part in (w, *identifier_parts(w))}
    return {_stem(w) for w in words if w.lower() not in STOP_WORDS}


def symbol_words_share(hit: Hit, words: set[str]) -> float:
    """The share of the words of the hit's symbol's last part (``get_netrc_auth``: get,
    netrc, auth) that are among the query's ``words`` (:func:`query_words`)."""
    last = re.split(r"\.|::|#", hit.symbol)[-1] if hit.symbol else ""
    parts = {_stem(p) for p in identifier_parts(last)} if last else set()
    if not parts:
        return 0.0
    return len(parts & words) / len(parts)


def secondary_path(path: str) -> bool:
    """Whether ``path`` is a test, mock, example, vendored or generated file."""
    parts = path.replace("\\", "/").split("/")
    if any(part.lower() in SECONDARY_DIRS for part in parts[:-1]):
        return True
    name = parts[-1]
    return bool(_SECONDARY_FILE.match(name.lower()) or _SECONDARY_CLASS_FILE.fullmatch(name))


def file_scores(results: Sequence[SearchResult]) -> dict[tuple[str, str], list[float]]:
    """Per (repository, path), its results' scores, best first."""
    scores: dict[tuple[str, str], list[float]] = {}
    for result in results:
        scores.setdefault((result.hit.repo, result.hit.path), []).append(result.score)
    for values in scores.values():
        values.sort(reverse=True)
    return scores


def best_other(scores: Sequence[float], own: float) -> float:
    """The best of a file's ``scores`` (best first) other than one equal to ``own``."""
    if not scores:
        return 0.0
    if scores[0] == own:
        return scores[1] if len(scores) > 1 else 0.0
    return scores[0]


# Kinds of the chunks of one split definition. A chunk named by a module, class or other
# container packs several definitions (or the container's own lines): two of them are
# not one definition, and merging them would hide the functions they hold.
_SPLIT_KINDS = frozenset({"function", "method"})


def same_definition(a: Hit, b: Hit) -> bool:
    """Whether two hits are chunks of one definition: same repository, path and
    (non-empty) symbol of a function or method, lines overlapping or adjacent."""
    return (
        bool(a.symbol)
        and a.kind in _SPLIT_KINDS
        and a.symbol == b.symbol
        and a.repo == b.repo
        and a.path == b.path
        and a.start_line <= b.end_line + 1
        and b.start_line <= a.end_line + 1
    )


def merge_definitions(results: Sequence[SearchResult]) -> list[SearchResult]:
    """``results`` (best first) with each chunk of a definition already listed dropped:
    a definition split into several chunks takes one place, that of its best chunk,
    whose ranks gain the retrievers only the dropped chunks had (best rank kept).
    Linear in the results, up to the chunks one symbol has in one file."""
    kept: list[SearchResult] = []
    by_symbol: dict[tuple[str, str, str], list[int]] = {}
    for result in results:
        hit = result.hit
        slots = by_symbol.setdefault((hit.repo, hit.path, hit.symbol), []) if hit.symbol else []
        for i in slots:
            earlier = kept[i]
            if same_definition(earlier.hit, hit):
                ranks = dict(earlier.ranks)
                for retriever, rank in result.ranks.items():
                    ranks[retriever] = min(rank, ranks.get(retriever, rank))
                kept[i] = SearchResult(earlier.hit, earlier.score, ranks, earlier.neighbours)
                break
        else:
            if hit.symbol:
                slots.append(len(kept))
            kept.append(result)
    return kept


def rank(
    rankings: Mapping[str, Sequence[Hit]], query: str, k: int, ranking: Ranking
) -> list[SearchResult]:
    """The best ``k`` results of the retrievers' ``rankings`` for ``query`` (see the
    module's docstring for the steps)."""
    weights = fusion_weights(query, ranking)
    if ranking.fusion == "scores":
        fused = fuse_scores(rankings, weights=weights)
    else:
        fused = fuse(rankings, None, rrf_k=ranking.rrf_k, weights=weights)
    names = query_names(query) if ranking.name_boost else set()
    words = query_words(query) if ranking.symbol_words_boost else set()
    totals = file_scores(fused) if ranking.file_boost else {}
    adjusted = []
    for result in fused:
        score = result.score
        if names and defines_named(result.hit, names):
            score += ranking.name_boost
        if words:
            score += ranking.symbol_words_boost * symbol_words_share(result.hit, words)
        if ranking.path_penalty and secondary_path(result.hit.path):
            score *= 1.0 - ranking.path_penalty
        if totals:
            other = best_other(totals[(result.hit.repo, result.hit.path)], result.score)
            score += ranking.file_boost * other
        adjusted.append(SearchResult(result.hit, score, result.ranks))
    adjusted.sort(key=_order)
    if ranking.merge_definitions:
        adjusted = merge_definitions(adjusted)
    return adjusted[:k]
