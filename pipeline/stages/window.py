"""Fair sharing of every stage between jobs (and so between tenants): a job's window of
files in flight.

Every stage queue is FIFO and shared by all tenants, so whoever has the most messages
waiting ahead of a queue's tail decides how long a newcomer waits there. A large job
therefore never has more than ``window_files`` files in flight (sent for chunking, not
yet settled): its ingest sends one slice, and the next slice (``INGEST_MORE``) is sent
only when settling files leaves room for it. Another tenant's messages then queue
behind at most one window of the large job's work in each stage, whatever the size of
its repository; the large job keeps its stages busy (a slice is sent while the
previous one is still in flight) and loses little throughput.

The bookkeeping lives on the job board, replay-safe like the rest of a job's counters:

* ``window.sent``: the set of paths sent for chunking (a redelivered slice counts once);
* ``window.pending``: the tokens ``<run>|<after>`` of slices waiting for room, where
  ``run`` names one ingest run (a recovered job's new ingest run holds new tokens, so a
  slice whose message was lost is sent again by the recovery, never lost for good);
* ``window.released``: the tokens whose ``INGEST_MORE`` was sent; marking one is the
  claim, so two files settling at once send it once;
* ``window.files`` and ``window.slice_files``: the window and the slice it was held with.

Files that settle without being sent (unreadable at ingest) make the count of files in
flight (sent less settled) err low, never high: a window is released early, never held
for ever.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline import flow
from pipeline.ports import JobBoard

SENT = "window.sent"
PENDING = "window.pending"
RELEASED = "window.released"
WINDOW_FILES = "window.files"
SLICE_FILES = "window.slice_files"
PREFIX = "window."

Send = Callable[[str, Sequence[Mapping[str, Any]]], None]


def slice_size(slice_files: int, window_files: int) -> int:
    """Files one slice sends: without a window (0) ``slice_files``; with one, half the
    window at most, so that the next slice is sent while this one is still in flight."""
    if window_files <= 0:
        return slice_files
    return max(1, min(slice_files, window_files // 2))


def token(run: str, after: str) -> str:
    return f"{run}|{after}"


def after_of(held: str) -> tuple[str, str]:
    """``(run, after)`` of a pending token."""
    run, _, after = held.partition("|")
    return run, after


def hold(
    board: JobBoard,
    job_id: str,
    *,
    run: str,
    sent: Sequence[str],
    after: str | None,
    window_files: int,
    slice_files: int,
) -> None:
    """Record a slice's files as sent and, when more remain (``after``: its last path),
    the next slice as pending. Called before the slice's messages are sent: a file
    settling at once already finds the pending slice to release."""
    board.set_counters(job_id, {WINDOW_FILES: window_files, SLICE_FILES: slice_files})
    board.mark(job_id, SENT, sent)
    if after is not None:
        board.mark(job_id, PENDING, [token(run, after)])


def in_flight(counters: Mapping[str, int], settled: int) -> int:
    """Files of the job sent for chunking and not settled yet."""
    return max(0, counters.get(SENT, 0) - settled)


def release(
    board: JobBoard, send: Send, job_id: str, counters: Mapping[str, int], settled: int
) -> int:
    """Send the job's pending slices that fit its window now; how many were sent. Cheap
    when nothing is pending (it reads only ``counters``)."""
    pending = counters.get(PENDING, 0) - counters.get(RELEASED, 0)
    window_files = counters.get(WINDOW_FILES, 0)
    if pending <= 0 or window_files <= 0:
        return 0
    step = max(1, counters.get(SLICE_FILES, 1))
    if in_flight(counters, settled) + step > window_files:
        return 0
    waiting = sorted(board.members(job_id, PENDING) - board.members(job_id, RELEASED))
    for held in waiting[:1]:  # one slice per release: the next settles make room for more
        if board.mark(job_id, RELEASED, [held]):
            run, after = after_of(held)
            send(flow.INGEST_MORE.task, [{"job_id": job_id, "after": after, "run": run}])
            return 1
    return 0


def public(counters: Mapping[str, int]) -> dict[str, int]:
    """The counters without the window's bookkeeping (a job's status does not show it)."""
    return {k: v for k, v in counters.items() if not k.startswith(PREFIX)}
