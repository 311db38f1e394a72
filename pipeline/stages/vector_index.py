"""Rows the write stage wrote go into the HNSW index after their job (migration 0021).

The write stage's upsert leaves a row with a vector out of the approximate index
(``indexed`` false): an HNSW insert costs milliseconds a row, and it was most of a
one-file change's time to ``done``. Search finds such rows by an exact scan beside the
index scan (pipeline/statements/search_sql.py), so a job is searchable when it is done,
and this stage only moves the index's cost off the job's path.

One step adds batches of rows, each batch in its own transaction, for at most a budget,
then hands on to the next step if rows still wait, so that other write-queue tasks go
between steps. One chain of steps runs at a time: a step that starts one takes a lease
on the job board (``VECTORS_LEASE``); a step sent by another holds it already. The
commit starts a chain after each job and the sweep when rows wait (a lost step, a store
that was down); a start that finds the lease taken does nothing, since the chain that
holds it drains what is there.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.errors import TransientError
from pipeline.ports import JobBoard, VectorStore

VECTORS_LEASE = ("maintenance", "vectors-index")  # (board key, marker)


@dataclass(frozen=True, slots=True)
class IndexStep:
    """What one step did: rows added, whether it ran (False: another chain holds the
    lease) and whether it handed on to a next step."""

    added: int
    ran: bool
    handed_on: bool


def index_step(
    store: VectorStore,
    board: JobBoard,
    send_next: Callable[[], None],
    *,
    chained: bool,
    batch_rows: int,
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> IndexStep:
    """Batches of ``batch_rows`` into the index until a batch is not full or
    ``budget_s`` has passed; then ``send_next()`` if rows may still wait (the lease
    goes with it), else the lease is released. ``chained``: sent by a step, which holds
    the lease. A TransientError releases the lease and propagates."""
    key, marker = VECTORS_LEASE
    lease_s = budget_s * 2 + 30  # outlives a step and the hand-on to the next
    if not chained and not board.throttle(key, marker, lease_s):
        return IndexStep(0, ran=False, handed_on=False)
    deadline = clock() + budget_s
    added = 0
    try:
        while True:
            done = store.index_pending(batch_rows)
            added += done
            if done < batch_rows:
                break
            if clock() >= deadline:
                send_next()
                return IndexStep(added, ran=True, handed_on=True)
    except TransientError:
        board.release(key, marker)
        raise
    board.release(key, marker)
    return IndexStep(added, ran=True, handed_on=False)
