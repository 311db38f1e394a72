"""Device batches respect the token budget and the count cap, and OOM halves a batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.adapters.fakes.embedder import InMemoryEmbedder
from pipeline.errors import EmbeddingOutOfMemoryError
from pipeline.stages.batching import embed_halving, plan_batches


@pytest.mark.parametrize(
    ("tokens", "budget", "cap", "expected"),
    [
        ([], 100, 10, ()),
        ([10], 100, 10, ((0,),)),
        # sorted longest first: 50, 40, 10, 10 -> [50, 40] costs 100; then [10, 10]
        ([10, 50, 10, 40], 100, 10, ((1, 3), (0, 2))),
        # one text above the budget still gets a batch of its own
        ([500, 10], 100, 10, ((0,), (1,))),
        # the count cap splits equal lengths
        ([5, 5, 5, 5, 5], 1000, 2, ((0, 1), (2, 3), (4,))),
    ],
)
def test_plan_batches_packs_by_padded_tokens(
    tokens: list[int], budget: int, cap: int, expected: tuple[tuple[int, ...], ...]
) -> None:
    assert plan_batches(tokens, batch_tokens=budget, max_chunks=cap).batches == expected


@settings(max_examples=300, deadline=None)
@given(
    tokens=st.lists(st.integers(0, 256), max_size=300),
    budget=st.integers(256, 20000),
    cap=st.integers(1, 64),
)
def test_every_text_lands_in_exactly_one_batch_within_budget(
    tokens: list[int], budget: int, cap: int
) -> None:
    plan = plan_batches(tokens, batch_tokens=budget, max_chunks=cap)
    flat = [i for batch in plan.batches for i in batch]
    assert sorted(flat) == list(range(len(tokens)))
    for batch in plan.batches:
        assert len(batch) <= cap
        width = max(max(1, tokens[i]) for i in batch)
        assert len(batch) == 1 or width * len(batch) <= budget
        lengths = [tokens[i] for i in batch]
        assert lengths == sorted(lengths, reverse=True)
    assert plan.padded_tokens >= plan.real_tokens


def test_sorting_by_length_cuts_padding_against_arrival_order() -> None:
    tokens = [256, 8] * 50
    plan = plan_batches(tokens, batch_tokens=4096, max_chunks=1024)
    arrival_padded = sum(256 * len(tokens[i : i + 16]) for i in range(0, len(tokens), 16))
    assert arrival_padded > 1.9 * plan.real_tokens
    assert plan.padded_tokens < 1.3 * plan.real_tokens


def test_plan_batches_rejects_a_zero_budget() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_batches([1], batch_tokens=0, max_chunks=1)


def test_out_of_memory_halves_the_batch_until_it_fits() -> None:
    embedder = InMemoryEmbedder(max_batch=3)
    texts = [f"text number {i}" for i in range(10)]
    halved: list[int] = []
    vectors = embed_halving(embedder.embed, texts, on_halve=halved.append)
    assert vectors.shape == (10, 384)
    np.testing.assert_allclose(vectors, InMemoryEmbedder().embed(texts), rtol=1e-6)
    assert max(embedder.batch_sizes) <= 3
    assert halved[0] == 10


def test_a_single_text_that_does_not_fit_raises() -> None:
    embedder = InMemoryEmbedder(max_batch=0)
    with pytest.raises(EmbeddingOutOfMemoryError):
        embed_halving(embedder.embed, ["alone"])
