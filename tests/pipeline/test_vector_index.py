"""pipeline.stages.vector_index: bounded steps, one chain at a time (fakes)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.errors import StoreUnavailableError
from pipeline.models import Chunk, ChunkKind, RepoRef, Span, StoredChunk
from pipeline.stages.vector_index import VECTORS_LEASE, defers_index, index_step

REPO = RepoRef("t1", "app")


def _store(rows: int) -> InMemoryVectorStore:
    store = InMemoryVectorStore(dimension=4)
    store.ensure_repository(REPO)
    vector = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    store.upsert_chunks(REPO, [
        StoredChunk(Chunk(f"a.py#{n}", "a.py", "python", Span(n + 1, n + 1, 0, 1), f"f{n}",
                          ChunkKind.FUNCTION, f"h{n}", 1, "x"), "sha", "m", vector)
        for n in range(rows)
    ], defer_index=True)  # fmt: skip
    return store


class Clock:
    """A clock that moves ``per_call`` seconds each time it is read."""

    def __init__(self, per_call: float) -> None:
        self.now, self.per_call = 0.0, per_call

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now


def _free(board: InMemoryJobBoard) -> bool:
    key, marker = VECTORS_LEASE
    free = board.lease(key, marker, "probe", 1.0)
    board.release_lease(key, marker, "probe")
    return free


def test_a_step_drains_what_waits_and_releases_the_lease() -> None:
    store, board, sent = _store(10), InMemoryJobBoard(), []
    step = index_step(store, board, sent.append, holder=None, batch_rows=4, budget_s=60)
    assert (step.added, step.ran, step.handed_on) == (10, True, False)
    assert store.pending_rows() == 0 and sent == []
    assert _free(board), "the lease was released"


def test_one_chain_at_a_time_hands_on_with_its_lease() -> None:
    store, board, sent = _store(10), InMemoryJobBoard(), []
    step = index_step(store, board, sent.append, holder=None, batch_rows=4, budget_s=1.0,
                      clock=Clock(0.6))  # fmt: skip
    assert (step.added, step.handed_on) == (8, True), "two full batches, then the budget"
    (chain,) = sent
    assert store.pending_rows() == 2
    # Another start (a commit's, the sweep's) finds the lease held: the chain drains.
    other = index_step(store, board, sent.append, holder=None, batch_rows=4, budget_s=60)
    assert (other.ran, other.added) == (False, 0) and store.pending_rows() == 2
    # The step the chain sent renews its own lease and ends the chain.
    last = index_step(store, board, sent.append, holder=chain, batch_rows=4, budget_s=60)
    assert (last.ran, last.added, last.handed_on) == (True, 2, False)
    assert sent == [chain] and store.pending_rows() == 0
    assert _free(board), "the chain's end released the lease"


def test_a_chain_whose_lease_was_taken_over_stops_and_leaves_the_new_one_alone() -> None:
    """A step lost long enough for the lease to run out: a new chain starts; the old
    chain's next step (delivered late) neither runs nor releases the new one's lease."""
    clock = Clock(0.0)
    store, board, sent = _store(10), InMemoryJobBoard(clock=clock), []
    first = index_step(store, board, sent.append, holder=None, batch_rows=4, budget_s=1.0,
                       clock=Clock(0.6))  # fmt: skip
    assert first.handed_on
    clock.now += 1000  # the lease (2 budgets + 30 s) ran out
    board.lease(*VECTORS_LEASE, "new-chain", 60.0)
    late = index_step(store, board, sent.append, holder=sent[0], batch_rows=4, budget_s=60)
    assert (late.ran, late.added) == (False, 0)
    assert not board.lease(*VECTORS_LEASE, "someone-else", 60.0), "the new chain keeps it"


class FailingStore(InMemoryVectorStore):
    def index_pending(self, limit: int) -> int:
        raise StoreUnavailableError("postgres", "connection refused")


def test_a_store_that_is_down_releases_the_lease_so_the_next_start_runs() -> None:
    board = InMemoryJobBoard()
    with pytest.raises(StoreUnavailableError):
        index_step(FailingStore(), board, lambda _: None, holder=None, batch_rows=4, budget_s=1)
    assert _free(board)


@pytest.mark.parametrize(
    ("todo", "max_files", "defers"),
    [(1, 200, True), (200, 200, True), (201, 200, False), (None, 200, False), (1, 0, False)],
)
def test_only_small_jobs_defer_their_index(todo: int | None, max_files: int, defers: bool) -> None:
    assert defers_index(todo, max_files) is defers
