"""pipeline.stages.vector_index: bounded steps, one chain at a time (fakes)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.errors import StoreUnavailableError
from pipeline.models import Chunk, ChunkKind, RepoRef, Span, StoredChunk
from pipeline.stages.vector_index import VECTORS_LEASE, index_step

REPO = RepoRef("t1", "app")


def _store(rows: int) -> InMemoryVectorStore:
    store = InMemoryVectorStore(dimension=4)
    store.ensure_repository(REPO)
    vector = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    store.upsert_chunks(REPO, [
        StoredChunk(Chunk(f"a.py#{n}", "a.py", "python", Span(n + 1, n + 1, 0, 1), f"f{n}",
                          ChunkKind.FUNCTION, f"h{n}", 1, "x"), "sha", "m", vector)
        for n in range(rows)
    ])  # fmt: skip
    return store


class Clock:
    """A clock that moves ``per_call`` seconds each time it is read."""

    def __init__(self, per_call: float) -> None:
        self.now, self.per_call = 0.0, per_call

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now


def test_a_step_drains_what_waits_and_releases_the_lease() -> None:
    store, board, sent = _store(10), InMemoryJobBoard(), []
    step = index_step(store, board, lambda: sent.append(1), chained=False, batch_rows=4,
                      budget_s=60)  # fmt: skip
    assert (step.added, step.ran, step.handed_on) == (10, True, False)
    assert store.pending_rows() == 0 and sent == []
    assert board.throttle(*VECTORS_LEASE, 1.0), "the lease was released"


def test_a_step_past_its_budget_hands_on_and_keeps_the_lease_for_the_next() -> None:
    store, board, sent = _store(10), InMemoryJobBoard(), []
    step = index_step(store, board, lambda: sent.append(1), chained=False, batch_rows=4,
                      budget_s=1.0, clock=Clock(0.6))  # fmt: skip
    assert (step.added, step.handed_on) == (8, True), "two full batches, then the budget"
    assert sent == [1] and store.pending_rows() == 2
    # Another start (a commit, the sweep) finds the lease held: the chain drains it.
    other = index_step(store, board, lambda: sent.append(2), chained=False, batch_rows=4,
                       budget_s=60)  # fmt: skip
    assert (other.ran, other.added) == (False, 0) and store.pending_rows() == 2
    # The step the chain sent holds the lease already.
    last = index_step(store, board, lambda: sent.append(3), chained=True, batch_rows=4,
                      budget_s=60)  # fmt: skip
    assert (last.ran, last.added, last.handed_on) == (True, 2, False)
    assert sent == [1] and store.pending_rows() == 0
    assert board.throttle(*VECTORS_LEASE, 1.0), "the chain's end released the lease"


class FailingStore(InMemoryVectorStore):
    def index_pending(self, limit: int) -> int:
        raise StoreUnavailableError("postgres", "connection refused")


def test_a_store_that_is_down_releases_the_lease_so_the_sweep_starts_again() -> None:
    board = InMemoryJobBoard()
    with pytest.raises(StoreUnavailableError):
        index_step(FailingStore(), board, lambda: None, chained=False, batch_rows=4, budget_s=1)
    assert board.throttle(*VECTORS_LEASE, 1.0)
