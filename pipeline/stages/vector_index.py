"""Rows the write stage wrote go into the HNSW index after their job (migration 0021).

An HNSW insert costs milliseconds a row, and it was most of a one-file change's time to
``done``. So the write stage's upsert leaves a small job's rows out of the approximate
index (``indexed`` false; a large job's go in as before, see ``defers_index``); search
finds such rows by an exact scan beside the index scan
(pipeline/statements/search_sql.py), so a job is searchable when it is done, and this
stage moves the index's cost off the job's path. It applies to the vectors stored in
``chunks.embedding``; a model stored in a table of its own (pipeline/embedding_models.py)
is indexed in the write, as before.

One step adds batches of rows, each batch in its own transaction, for at most a budget,
then hands on to a next step if rows still wait, so that other write-queue tasks go
between steps. One chain of steps runs at a time: its first step takes a lease on the
job board under a holder id of its own, and each step it sends renews that lease, so a
start that finds the lease held (a commit's, the sweep's) does nothing: the chain drains
what is there. A chain whose lease ran out (a step lost) stops at its next step. The
commit offers a start after each job, the sweep when rows wait; a start refused while a
chain runs its last batch leaves the rows written meanwhile to the next start.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from pipeline import flow
from pipeline.errors import QueueFullError, TransientError
from pipeline.ports import JobBoard, VectorStore
from pipeline.stages.indexing import JobContext

log = logging.getLogger("quarry.vectors")
VECTORS_LEASE = ("maintenance", "vectors-index")  # (board key, marker)


@dataclass(frozen=True, slots=True)
class IndexStep:
    """What one step did: rows added, whether it ran (False: another chain holds the
    lease) and whether it handed on to a next step."""

    added: int
    ran: bool
    handed_on: bool


def defers_index(todo_files: int | None, max_files: int) -> bool:
    """Whether a job's rows wait for the vector index: a job of at most ``max_files``
    files to do (its latency is what the index would cost); a larger one, or one whose
    count is unknown, pays the inserts in its writes, spread over the write workers,
    so that no long backlog is drained by one chain while searches scan it exactly."""
    return todo_files is not None and todo_files <= max_files


def offer_start(ctx: JobContext) -> None:
    """Offer a chain's first step without waiting for room on the write queue: a full
    queue drops it (the sweep offers again while rows wait)."""
    send = ctx.offer or ctx.send
    try:
        send(flow.INDEX_VECTORS_TASK, [{}])
    except QueueFullError as exc:
        log.info("vector index start dropped, the write queue is full: %s", exc)


def index_step(
    store: VectorStore,
    board: JobBoard,
    send_next: Callable[[str], None],
    *,
    holder: str | None,
    batch_rows: int,
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> IndexStep:
    """Batches of ``batch_rows`` into the index until a batch is not full or
    ``budget_s`` has passed; then ``send_next(holder)`` if rows may still wait (the
    lease goes with it), else the lease is released. ``holder``: the chain's id, given
    by the step before (None: a start, which takes a new one). A TransientError releases
    the lease and propagates."""
    key, marker = VECTORS_LEASE
    lease_s = budget_s * 2 + 30  # outlives a step and the hand-on to the next
    holder = holder or uuid.uuid4().hex
    if not board.lease(key, marker, holder, lease_s):
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
                send_next(holder)
                return IndexStep(added, ran=True, handed_on=True)
    except TransientError:
        board.release_lease(key, marker, holder)
        raise
    board.release_lease(key, marker, holder)
    return IndexStep(added, ran=True, handed_on=False)
