"""The embedding use case: only cache misses are embedded, once per content and model."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.adapters.fakes.embedder import InMemoryEmbedder
from pipeline.adapters.fakes.query_cache import InMemoryQueryEmbeddingCache
from pipeline.adapters.fakes.vector_store import InMemoryEmbeddingCache
from pipeline.errors import InvalidInputError, StoreUnavailableError
from pipeline.stages.embedding import EmbeddingService, embed_query, warn_of_other_model_ids


def _service(
    embedder: InMemoryEmbedder | None = None, cache: InMemoryEmbeddingCache | None = None
) -> EmbeddingService:
    return EmbeddingService(
        embedder or InMemoryEmbedder(),
        cache if cache is not None else InMemoryEmbeddingCache(),
        batch_tokens=64,
        max_chunks=8,
    )


def test_identical_contents_are_embedded_once_across_calls() -> None:
    service = _service()
    embedder = service.embedder
    assert isinstance(embedder, InMemoryEmbedder)
    first = service.embed(
        [("h1", "def a(): pass"), ("h2", "def b(): pass"), ("h1", "def a(): pass")]
    )
    assert (first.embedded, first.cached) == (2, 0)
    second = service.embed([("h1", "def a(): pass"), ("h3", "def c(): pass")])
    assert (second.embedded, second.cached) == (1, 1)
    assert second.cache_hit_ratio == pytest.approx(0.5)
    assert sorted(embedder.embedded_texts) == ["def a(): pass", "def b(): pass", "def c(): pass"]
    np.testing.assert_array_equal(first.vectors["h1"], second.vectors["h1"])


def test_a_model_change_re_embeds_instead_of_reusing_another_space() -> None:
    cache = InMemoryEmbeddingCache()
    _service(InMemoryEmbedder(model_id="model-a"), cache).embed([("h1", "x = 1")])
    other = InMemoryEmbedder(model_id="model-b")
    outcome = _service(other, cache).embed([("h1", "x = 1")])
    assert (outcome.embedded, outcome.cached) == (1, 0)
    assert other.embedded_texts == ["x = 1"]


def test_blank_texts_get_no_vector_and_are_counted() -> None:
    outcome = _service().embed([("h1", ""), ("h2", "  \n"), ("h3", "y")])
    assert outcome.empty == 2
    assert set(outcome.vectors) == {"h3"}


def test_a_text_longer_than_the_window_is_counted_as_truncated() -> None:
    service = _service(InMemoryEmbedder(max_tokens=16))
    outcome = service.embed([("long", " ".join(["word"] * 100)), ("short", "word")])
    assert outcome.truncated == 1
    assert np.isfinite(outcome.vectors["long"]).all()


def test_batches_follow_the_token_budget() -> None:
    service = _service()
    texts = [(f"h{i}", " ".join(["w"] * 14)) for i in range(20)]  # 16 tokens each
    outcome = service.embed(texts)
    assert all(b.padded_tokens <= 64 for b in outcome.batches)
    assert [b.chunks for b in outcome.batches] == [4, 4, 4, 4, 4]


def test_out_of_memory_halves_and_still_embeds_everything() -> None:
    embedder = InMemoryEmbedder(max_batch=2)
    outcome = _service(embedder).embed([(f"h{i}", f"text {i}") for i in range(8)])
    assert outcome.embedded == 8
    assert outcome.halvings > 0


class _DownCache(InMemoryEmbeddingCache):
    def get_many(self, model_id: str, content_hashes: object) -> dict[str, np.ndarray]:  # type: ignore[override]
        raise StoreUnavailableError("postgres", "connection refused")

    def put_many(self, model_id: str, vectors: object) -> None:  # type: ignore[override]
        raise StoreUnavailableError("postgres", "connection refused")


def test_a_cache_that_is_down_costs_recomputation_not_a_failure() -> None:
    outcome = _service(cache=_DownCache()).embed([("h1", "a"), ("h2", "b")])
    assert (outcome.embedded, outcome.cached) == (2, 0)


def test_a_chunk_without_a_content_hash_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="no content hash"):
        _service().embed([("", "text")])


def test_a_repeated_query_costs_no_model_call() -> None:
    embedder = InMemoryEmbedder()
    cache = InMemoryQueryEmbeddingCache(ttl_s=60)
    first = embed_query(embedder, cache, "parse http headers")
    second = embed_query(embedder, cache, "parse http headers")
    assert embedder.embedded_texts == ["parse http headers"]
    np.testing.assert_array_equal(first, second)


def test_an_empty_query_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        embed_query(InMemoryEmbedder(), None, "   ")


def test_vectors_of_another_model_id_are_named_in_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = InMemoryEmbeddingCache(dimension=2)
    vector = np.array([1.0, 0.0], dtype=np.float32)
    cache.put_many("all-MiniLM-L6-v2", {"h": vector})
    assert warn_of_other_model_ids(cache, "all-MiniLM-L6-v2") == []
    assert not caplog.records
    cache.put_many("all-MiniLM-L6-v2+onnx-int8", {"h": vector})
    with caplog.at_level("WARNING", logger="quarry.embed"):
        others = warn_of_other_model_ids(cache, "all-MiniLM-L6-v2")
    assert others == ["all-MiniLM-L6-v2+onnx-int8"]
    assert "all-MiniLM-L6-v2+onnx-int8" in caplog.text
    assert "vector search skips" in caplog.text


def test_a_cache_that_does_not_answer_does_not_stop_the_check() -> None:
    class Down(InMemoryEmbeddingCache):
        def model_ids(self) -> list[str]:
            raise StoreUnavailableError("postgres", "down")

    assert warn_of_other_model_ids(Down(), "m") == []
