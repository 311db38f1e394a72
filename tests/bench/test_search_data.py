"""The search benchmark's pure pieces: the seeded generator and the recall figure."""

from __future__ import annotations

import numpy as np
import pytest

from bench.search_data import (
    BATCH_ROWS,
    SyntheticCorpus,
    Vocabulary,
    normalised,
    percentiles_ms,
    recall_at_k,
    synthetic_id,
    synthetic_path,
)
from pipeline.statements.sql import CHUNK_STAGING_COLUMNS

TEXTS = [
    "def get_user get user name return self user",
    "class http_server http server handle request return response",
    "parse header value split return header",
    "open file read bytes close file",
]


def corpus(count: int, seed: int = 7) -> SyntheticCorpus:
    rng = np.random.default_rng(0)
    real = normalised(rng.standard_normal((len(TEXTS), 384)))
    return SyntheticCorpus(count, real, Vocabulary.of(TEXTS), seed=seed, chunks_per_cluster=10)


def test_vocabulary_counts_words_and_keeps_each_chunks_words() -> None:
    vocab = Vocabulary.of(TEXTS)
    assert list(vocab.lengths) == [len(t.split()) for t in TEXTS]
    first = vocab.words[vocab.tokens[vocab.offsets[0] : vocab.offsets[1]]].tolist()
    assert first == TEXTS[0].split()
    assert vocab.probabilities.sum() == pytest.approx(1.0)
    total = sum(len(t.split()) for t in TEXTS)
    assert vocab.probabilities[list(vocab.words).index("return")] == pytest.approx(3 / total)


def test_the_generator_is_deterministic_and_seeded() -> None:
    a, b, other = corpus(30).batch(0), corpus(30).batch(0), corpus(30, seed=8).batch(0)
    assert np.array_equal(a.vectors, b.vectors) and a.texts == b.texts
    assert not np.array_equal(a.vectors, other.vectors)


def test_rows_are_unit_vectors_grouped_by_cluster_with_words_of_the_corpus() -> None:
    made = corpus(30)
    batch = made.batch(0)
    assert made.clusters == 3 and len(batch.texts) == 30
    assert np.allclose(np.linalg.norm(batch.vectors, axis=1), 1.0, atol=1e-5)
    assert list(batch.clusters) == sorted(batch.clusters)
    words = {w for t in TEXTS for w in t.split()}
    assert all(set(text.split()) <= words for text in batch.texts)
    # a member is nearer its own centre than the other clusters' centres on average
    centres = normalised(made.centres)
    sims = batch.vectors @ centres.T
    own = sims[np.arange(30), batch.clusters].mean()
    assert own > sims.mean() + 0.1


def test_rows_follow_the_staging_columns_and_files_hold_consecutive_chunks() -> None:
    made = corpus(45)
    rows = made.rows(made.batch(0), "model")
    assert all(len(row) == len(CHUNK_STAGING_COLUMNS) for row in rows)
    assert rows[0][0] == synthetic_id(0) and rows[0][1] == synthetic_path(0)
    assert rows[19][1] == synthetic_path(0) and rows[20][1] == synthetic_path(1)
    assert rows[1][3] > rows[0][4]  # the second chunk of a file starts after the first
    assert len({row[0] for row in rows}) == 45


def test_batches_split_the_rows() -> None:
    made = corpus(BATCH_ROWS + 5)
    assert made.batches == 2
    assert made.batch(1).start == BATCH_ROWS and len(made.batch(1).texts) == 5
    with pytest.raises(IndexError):
        made.batch(2)


def test_queries_are_near_their_cluster_with_words_of_its_topic() -> None:
    made = corpus(30)
    texts, vectors = made.queries(5, seed=1)
    assert len(texts) == 5 and vectors.shape == (5, 384)
    assert all(1 <= len(t.split()) <= 8 for t in texts)
    assert (vectors @ normalised(made.centres).T).max(axis=1).min() > 0.5


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        ([("a", 0.9), ("b", 0.8)], 1.0),
        ([("a", 0.9), ("x", 0.1)], 0.5),
        ([("a", 0.9), ("y", 0.8)], 1.0),  # a tie with the k-th exact hit counts
        ([], 0.0),
    ],
)
def test_recall_counts_exact_ids_and_ties(found: list[tuple[str, float]], expected: float) -> None:
    exact = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    assert recall_at_k(found, exact, 2) == expected


def test_percentiles_are_milliseconds() -> None:
    figures = percentiles_ms([0.001 * i for i in range(1, 101)])
    assert figures["p50_ms"] == pytest.approx(50.5)
    assert figures["p95_ms"] == pytest.approx(95.05)
    assert percentiles_ms([]) == {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
