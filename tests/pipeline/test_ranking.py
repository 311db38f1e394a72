"""Ranking after retrieval (``pipeline.search.ranking``): pure functions, no stores."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from pipeline.models import Hit
from pipeline.search.ranking import (
    Ranking,
    SearchResult,
    defines_named,
    fuse,
    fuse_scores,
    fusion_weights,
    identifier_share,
    lexical_order,
    merge_definitions,
    ordered_scores,
    query_names,
    query_words,
    rank,
    same_definition,
    secondary_path,
    symbol_words_share,
)


def hit(
    chunk_id: str,
    path: str = "",
    *,
    symbol: str = "",
    start: int = 1,
    end: int = 5,
    score: float = 0.5,
    repo: str = "r",
) -> Hit:
    return Hit(repo, chunk_id, path or f"{chunk_id}.py", start, end,
               symbol or f"m.{chunk_id}", "function", "python", "", score)  # fmt: skip


def order(results: Sequence[SearchResult]) -> list[str]:
    return [r.hit.chunk_id for r in results]


# --- query type -------------------------------------------------------------------------


def test_identifier_share_counts_code_shaped_tokens() -> None:
    assert identifier_share("return the first element of a list") == 0.0
    assert identifier_share("get_netrc_auth") == 1.0
    assert identifier_share("copy") == 1.0  # a one-word query names something
    assert identifier_share("where is getAuth called") == 0.25
    assert identifier_share("Router.ServeHTTP calls()") == 1.0
    assert identifier_share("   ") == 0.0


def test_fusion_weights_follow_the_query_type() -> None:
    ranking = Ranking(
        weight_vector=2.0,
        weight_lexical=1.0,
        identifier_weight_vector=0.5,
        identifier_weight_lexical=3.0,
    )
    assert fusion_weights("make a copy of the headers", ranking) == {"vector": 2.0, "lexical": 1.0}
    assert fusion_weights("parse_header_links", ranking) == {"vector": 0.5, "lexical": 3.0}
    high = replace(ranking, identifier_share=1.0)
    assert fusion_weights("where is getAuth called", high)["vector"] == 2.0


def test_query_names_are_identifier_shaped_words_only() -> None:
    assert query_names("make a copy of the headers") == set()
    assert query_names("copy") == {"copy"}
    assert query_names("where is getAuth or get_netrc_auth") == {"getauth", "get_netrc_auth"}


def test_named_first_only_for_identifier_like_queries_when_asked() -> None:
    mock = hit("mock", symbol="tests.mock_auth")
    definition = hit("def", symbol="auth.get_auth")
    hits = [mock, definition]
    always = Ranking()
    by_type = Ranking(named_first_share=0.5)
    assert order_hits(lexical_order(hits, "get_auth", always)) == ["def", "mock"]
    assert order_hits(lexical_order(hits, "get_auth", by_type)) == ["def", "mock"]
    sentence = "calls get_auth for a url first"
    assert order_hits(lexical_order(hits, sentence, always)) == ["def", "mock"]
    assert order_hits(lexical_order(hits, sentence, by_type)) == ["mock", "def"]


def order_hits(hits: Sequence[Hit]) -> list[str]:
    return [h.chunk_id for h in hits]


def test_defines_named_matches_the_symbol_or_its_last_part() -> None:
    names = {"get_auth"}
    assert defines_named(hit("a", symbol="requests.utils.get_auth"), names)
    assert defines_named(hit("a", symbol="Get_Auth"), names)
    assert defines_named(hit("a", symbol="crate::auth::get_auth"), names)
    assert not defines_named(hit("a", symbol="tests.test_get_auth"), names)
    assert not defines_named(Hit("r", "a", "a.py", 1, 2, "", "module", "python", "", 0.1), names)


def test_symbol_words_share_counts_the_symbol_words_the_query_has() -> None:
    words = query_words("Returns the first elements of the parsed iterables")
    assert "the" not in words and "return" in words
    assert symbol_words_share(hit("a", symbol="more.first_element"), words) == 1.0
    assert symbol_words_share(hit("a", symbol="more.lastElement"), words) == 0.5
    assert symbol_words_share(hit("a", symbol="Parser::parse"), words) == 1.0
    assert symbol_words_share(hit("a", symbol="m.unrelated"), words) == 0.0
    no_symbol = Hit("r", "x", "m.py", 1, 40, "", "module", "python", "", 0.1)
    assert symbol_words_share(no_symbol, words) == 0.0


def test_the_symbol_words_boost_lifts_the_chunk_named_like_the_question() -> None:
    other = hit("other", symbol="m.helper")
    named = hit("named", symbol="m.first_element")
    rankings = {"vector": [other, named], "lexical": []}
    question = "return the first element"
    assert order(rank(rankings, question, 2, Ranking())) == ["other", "named"]
    assert order(rank(rankings, question, 2, Ranking(symbol_words_boost=0.1))) == [
        "named",
        "other",
    ]


# --- paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_utils.py",
        "src/foo/tests/helpers.py",
        "pkg/server_test.go",
        "src/app.test.ts",
        "src/__mocks__/api.js",
        "examples/basic/main.go",
        "vendor/github.com/x/y.go",
        "api/service_pb2.py",
        "src/test/java/org/FooTest.java",
        "src/main/java/org/OptionsTests.java",
        "App/TestParser.cs",
        "conftest.py",
        "dist/app.min.js",
    ],
)
def test_secondary_paths(path: str) -> None:
    assert secondary_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "src/requests/utils.py",
        "mux.go",
        "test_helpers.go",  # Go's tests end in _test.go
        "src/main/java/org/Options.java",
        "src/latest.rs",
        "src/contest.py",
        "src/main/java/org/Contest.java",
        "src/main/java/org/Testing.java",
    ],
)
def test_primary_paths(path: str) -> None:
    assert not secondary_path(path)


# --- fusion -----------------------------------------------------------------------------


def test_fuse_scores_scales_each_retriever_and_sums() -> None:
    a, b, c = hit("a", score=0.9), hit("b", score=0.5), hit("c", score=0.1)
    lexical_b, lexical_c = hit("b", score=20.0), hit("c", score=10.0)
    fused = fuse_scores({"vector": [a, b, c], "lexical": [lexical_b, lexical_c]})
    assert order(fused) == ["b", "a", "c"]
    assert [r.score for r in fused] == pytest.approx([0.5 + 1.0, 1.0, 0.0])
    assert fused[0].ranks == {"vector": 2, "lexical": 1}
    weighted = fuse_scores({"vector": [a, b, c], "lexical": [lexical_b]}, weights={"lexical": 0.2})
    assert order(weighted) == ["a", "b", "c"]


def test_fuse_scores_of_equal_scores_and_no_hits() -> None:
    fused = fuse_scores({"vector": [hit("a"), hit("b")], "lexical": []})
    assert [r.score for r in fused] == [1.0, 1.0]
    assert order(fused) == ["a", "b"]  # ties: the best single rank first
    assert fuse_scores({"vector": [], "lexical": []}) == []


def test_fuse_scores_keeps_the_retrievers_order() -> None:
    # named_first moved the definition above a test that mocks it (higher BM25).
    definition = hit("def", "src/auth.py", symbol="auth.get_netrc_auth", score=3.0)
    mock = hit("mock", "tests/test_auth.py", symbol="tests.mock_netrc", score=5.0)
    other = hit("other", score=1.0)
    fused = fuse_scores({"vector": [], "lexical": [definition, mock, other]})
    assert order(fused) == ["def", "mock", "other"]
    assert [r.score for r in fused] == pytest.approx([1.0, 1.0, 0.0])  # 5.0, 5.0, 1.0
    ranked = rank(
        {"vector": [], "lexical": [definition, mock, other]},
        "get_netrc_auth",
        3,
        Ranking(fusion="scores", merge_definitions=True, file_boost=0.2),
    )
    assert order(ranked)[0] == "def"


def test_ordered_scores_lift_a_moved_block_and_keep_its_spacing() -> None:
    assert ordered_scores([5.0, 4.0, 1.0]) == [5.0, 4.0, 1.0]
    # named_first put [3.0, 2.5] above [5.0, 1.0]: the block is lifted by 2.5 as a whole.
    assert ordered_scores([3.0, 2.5, 5.0, 1.0]) == [5.5, 5.0, 5.0, 1.0]
    assert ordered_scores([]) == []
    assert ordered_scores([2.0]) == [2.0]


def test_rank_with_the_default_ranking_is_plain_rrf() -> None:
    rankings = {"vector": [hit("a"), hit("b"), hit("c")], "lexical": [hit("b"), hit("d")]}
    ranked = rank(rankings, "anything", 3, Ranking())
    fused = fuse(rankings, 3)
    assert [(r.hit, r.score, r.ranks) for r in ranked] == [(r.hit, r.score, r.ranks) for r in fused]


# --- code-aware adjustments -------------------------------------------------------------


def test_same_definition_needs_path_symbol_and_touching_lines() -> None:
    first = hit("a", "m.py", symbol="m.f", start=1, end=40)
    assert same_definition(first, hit("b", "m.py", symbol="m.f", start=41, end=80))
    assert same_definition(first, hit("b", "m.py", symbol="m.f", start=30, end=80))
    assert not same_definition(first, hit("b", "m.py", symbol="m.f", start=42, end=80))
    assert not same_definition(first, hit("b", "m.py", symbol="m.g", start=41, end=80))
    assert not same_definition(first, hit("b", "n.py", symbol="m.f", start=41, end=80))
    assert not same_definition(first, hit("b", "m.py", symbol="m.f", start=41, repo="s"))
    no_symbol = Hit("r", "x", "m.py", 1, 40, "", "module", "python", "", 0.1)
    assert not same_definition(no_symbol, replace(no_symbol, chunk_id="y", start_line=41))
    # Chunks named by a module or class pack several definitions: not one definition.
    packed = Hit("r", "x", "m.py", 1, 40, "m.C", "class", "python", "", 0.1)
    assert not same_definition(packed, replace(packed, chunk_id="y", start_line=41))
    module = replace(packed, symbol="m", kind="module")
    assert not same_definition(module, replace(module, chunk_id="y", start_line=30))


def test_two_chunks_of_one_function_take_one_place() -> None:
    head = hit("head", "m.py", symbol="m.f", start=1, end=40)
    tail = hit("tail", "m.py", symbol="m.f", start=41, end=70)
    other = hit("other", "m.py", symbol="m.g", start=72, end=80)
    ranked = rank(
        {"vector": [head, tail, other], "lexical": [tail, other]},
        "what f does",
        3,
        Ranking(merge_definitions=True),
    )
    assert order(ranked) == ["tail", "other"]
    assert ranked[0].ranks == {"vector": 1, "lexical": 1}  # the dropped chunk's ranks join
    plain = rank({"vector": [head, tail, other], "lexical": [tail, other]}, "q", 3, Ranking())
    assert order(plain) == ["tail", "other", "head"]


def test_merge_definitions_keeps_order_and_unrelated_results() -> None:
    results = [
        SearchResult(hit("a", "m.py", symbol="m.f", start=1, end=10), 3.0, {"vector": 1}),
        SearchResult(hit("b", "n.py"), 2.0, {"vector": 2}),
        SearchResult(hit("c", "m.py", symbol="m.f", start=11, end=20), 1.0, {"lexical": 1}),
    ]
    merged = merge_definitions(results)
    assert order(merged) == ["a", "b"]
    assert merged[0].ranks == {"vector": 1, "lexical": 1}
    assert merged[0].score == 3.0


def test_a_named_definition_outranks_its_callers_with_the_name_boost() -> None:
    caller = hit("caller", symbol="app.main")
    definition = hit("def", symbol="auth.get_netrc_auth")
    rankings = {"vector": [caller, definition], "lexical": [caller, definition]}
    assert order(rank(rankings, "get_netrc_auth", 2, Ranking()))[0] == "caller"
    boosted = rank(rankings, "get_netrc_auth", 2, Ranking(name_boost=0.1))
    assert order(boosted) == ["def", "caller"]
    # A sentence with no identifier in it names nothing: no boost.
    assert order(rank(rankings, "read the netrc auth", 2, Ranking(name_boost=0.1)))[0] == "caller"


def test_the_path_penalty_puts_a_test_below_the_definition() -> None:
    test = hit("test", "tests/test_auth.py", symbol="tests.test_auth.test_get_auth")
    definition = hit("def", "src/auth.py", symbol="auth.get_auth")
    rankings = {"vector": [test, definition], "lexical": [test, definition]}
    assert order(rank(rankings, "q", 2, Ranking())) == ["test", "def"]
    assert order(rank(rankings, "q", 2, Ranking(path_penalty=0.5))) == ["def", "test"]
    scores = [r.score for r in rank(rankings, "q", 2, Ranking(path_penalty=1.0))]
    assert scores[-1] == 0.0


def test_the_file_boost_lifts_a_chunk_whose_file_matches_elsewhere_too() -> None:
    lone = hit("lone", "a.py", score=0.9)
    first = hit("first", "b.py", symbol="b.f", start=1, end=5, score=0.5)
    second = hit("second", "b.py", symbol="b.g", start=10, end=15, score=0.1)
    rankings = {"vector": [lone, first, second], "lexical": []}
    assert order(rank(rankings, "q", 3, Ranking(fusion="scores"))) == ["lone", "first", "second"]
    boosted = rank(rankings, "q", 3, Ranking(fusion="scores", file_boost=0.5))
    # lone 1.0; first 0.5 + 0.5 * 0.0; second 0.0 + 0.5 * 0.5 (the best other of b.py)
    assert [r.score for r in boosted] == pytest.approx([1.0, 0.5, 0.25])
    strong = rank(rankings, "q", 3, Ranking(fusion="scores", file_boost=2.0))
    assert order(strong) == ["lone", "second", "first"]  # tie with lone: its rank 1 first
    assert [r.score for r in strong] == pytest.approx([1.0, 1.0, 0.5])


def test_ranking_the_most_candidates_a_request_can_ask_for_is_fast() -> None:
    # k = 1000 asks each retriever for 1000 hits: 2000 distinct chunks, many in one file.
    vector = [hit(f"v{i}", f"f{i % 7}.py", symbol=f"m.s{i}", start=i * 10, end=i * 10 + 9,
                  score=1.0 - i / 2000) for i in range(1000)]  # fmt: skip
    lexical = [hit(f"l{i}", f"g{i % 5}.py", symbol=f"m.s{i % 50}", start=i * 10,
                   end=i * 10 + 9, score=float(1000 - i)) for i in range(1000)]  # fmt: skip
    ranking = Ranking(fusion="scores", merge_definitions=True, file_boost=0.2)
    started = time.perf_counter()
    ranked = rank({"vector": vector, "lexical": lexical}, "q", 1000, ranking)
    assert time.perf_counter() - started < 1.0
    assert len(ranked) == 1000
