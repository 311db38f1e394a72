"""The bounds of pipeline/search/bm25.py: pruning never changes the BM25 top k.

A model of what ``PgSearchIndex.lexical_hits`` runs (seed, threshold, essential words,
read-from impacts, caps of what was not read), over random postings, against scoring
every row.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.search import bm25
from pipeline.search.bm25 import Plan, TermStats

VOCABULARY = [f"w{i}" for i in range(8)]


@given(
    tf=st.integers(1, 300),
    dl=st.integers(1, 5_000),
    avgdl=st.floats(1.0, 3_000.0),
)
def test_a_weight_is_at_most_its_impact_times_the_slack(tf: int, dl: int, avgdl: float) -> None:
    assert bm25.weight(tf, dl, avgdl) <= bm25.impact(tf, dl) * bm25.slack(avgdl)


def pruned_top(
    docs: list[dict[str, int]], query: list[str], k: int, per_word: int
) -> list[tuple[float, int]]:
    """The search as the index runs it, over ``docs`` (word -> tf), best ``k`` as
    (score, row number), by score then row."""
    lengths = [len(d) for d in docs]
    postings = {
        w: sorted(
            ((bm25.impact(d[w], lengths[i]), i) for i, d in enumerate(docs) if w in d),
            key=lambda p: (-p[0], p[1]),
        )
        for w in query
    }
    stats = [TermStats(w, len(postings[w]), postings[w][0][0] if postings[w] else 0.0)
             for w in query]  # fmt: skip
    plan = Plan.of(len(docs), sum(lengths), stats)

    def score(i: int) -> float:
        return plan.score({w: (tf, lengths[i]) for w, tf in docs[i].items()})

    def best(rows: set[int]) -> list[tuple[float, int]]:
        return sorted(((score(i), i) for i in rows), key=lambda s: (-s[0], s[1]))[:k]

    seed = best({i for w in plan.idf for _, i in postings[w][:per_word]})
    theta = seed[-1][0] if len(seed) >= k else 0.0
    start = plan.read_from(theta)
    caps = {w: plan.unread_cap(w, start[w]) for w in start}
    needed = theta * (1 - bm25.MARGIN) - sum(caps.values()) - plan.not_essential_bound(theta)
    gains: dict[int, float] = {}
    for w, from_impact in start.items():
        for stored, i in postings[w]:
            if stored >= from_impact:
                gain = plan.idf[w] * bm25.weight(docs[i][w], lengths[i], plan.avgdl) - caps[w]
                gains[i] = gains.get(i, 0.0) + gain
    rest = {i for i, gain in gains.items() if gain >= needed}
    return best({i for _, i in seed} | rest)


def every_row_top(docs: list[dict[str, int]], query: list[str], k: int) -> list[tuple[float, int]]:
    n = len(docs)
    avgdl = max(1.0, sum(len(d) for d in docs) / n)
    scored = []
    for i, d in enumerate(docs):
        held = [w for w in query if w in d]
        if held:
            score = sum(
                bm25.idf(n, sum(1 for e in docs if w in e)) * bm25.weight(d[w], len(d), avgdl)
                for w in held
            )
            scored.append((score, i))
    return sorted(scored, key=lambda s: (-s[0], s[1]))[:k]


@settings(max_examples=300, deadline=None)
@given(
    docs=st.lists(
        st.dictionaries(st.sampled_from(VOCABULARY), st.integers(1, 12), min_size=1, max_size=8),
        min_size=1,
        max_size=60,
    ),
    query=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=6, unique=True),
    k=st.integers(1, 10),
    per_word=st.integers(1, 4),
)
def test_the_pruned_search_finds_exactly_the_top_k(
    docs: list[dict[str, int]], query: list[str], k: int, per_word: int
) -> None:
    got = pruned_top(docs, query, k, per_word)
    want = every_row_top(docs, query, k)
    assert [i for _, i in got] == [i for _, i in want]
    assert [s for s, _ in got] == pytest.approx([s for s, _ in want], rel=1e-9)


def test_words_whose_bounds_sum_below_the_threshold_are_not_essential() -> None:
    plan = Plan.of(1_000, 64_000, [TermStats("a", 900, 1.0), TermStats("b", 500, 1.0),
                                   TermStats("z", 2, 2.0)])  # fmt: skip
    assert plan.essential(0.0) == ["a", "b", "z"]  # no threshold: every word
    cheap = plan.bound["a"] + plan.bound["b"]
    assert plan.essential(cheap * 1.01) == ["z"]  # a row of a and b only cannot reach it
    assert plan.essential(cheap * 0.99) == ["b", "z"]
    assert plan.read_from(0.0) == {"a": 0.0, "b": 0.0, "z": 0.0}
    assert plan.read_from(cheap * 1.01)["z"] > 0  # z's weakest rows are skipped
