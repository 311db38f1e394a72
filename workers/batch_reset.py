"""After the broker connection is lost, the embed worker's batch buffer starts afresh.

celery-batches flushes a batch task's buffer when it holds ``flush_every`` requests or
on a timer every ``flush_interval``; the timer is started by the first request and kept
in the task (``_tref``). When the connection to Redis is lost, Celery's consumer loop
clears its hub's timer and restarts, but the task still holds ``_tref``: no timer is
started again, and a buffer with fewer than ``flush_every`` requests is never flushed.
A job whose last messages sit there waits for ever (the sweeper sees them held by the
broker, rightly). The buffered requests are stale too: their delivery tags belonged to
the closed channel (Celery drops its own reserved requests for that reason), and their
messages go back to the queue (restored at once, or after the visibility timeout).

This consumer step, run at every start of the consumer (the first and each restart),
drops the stale buffer and the dead timer of every batch task, so that the next request
starts a new timer.

Must not import: api/, cli/, drivers.
"""

from __future__ import annotations

import logging
from itertools import count
from queue import Empty
from typing import Any

from celery import bootsteps
from celery_batches import Batches

log = logging.getLogger("quarry.worker")


def reset_batches(tasks: Any) -> int:
    """Drop every batch task's buffered requests and flush timer; how many were dropped."""
    dropped = 0
    for task in list(tasks.values()):
        if not isinstance(task, Batches):
            continue
        for buffer in (task._buffer, task._pending):
            while True:
                try:
                    buffer.get_nowait()
                except Empty:
                    break
                dropped += 1
        if task._tref is not None:
            task._tref.cancel()  # a no-op on a cleared timer; a live one must not fire twice
        task._tref = None
        task._count = count(1)
    return dropped


class BatchesReset(bootsteps.StartStopStep):  # type: ignore[misc]
    """Reset the batch tasks whenever the consumer (re)starts (see the module doc)."""

    def start(self, parent: Any) -> None:
        dropped = reset_batches(parent.app.tasks)
        if dropped:
            log.warning(
                "consumer restarted: dropped %d buffered batch requests of the closed "
                "channel (their messages are delivered again)",
                dropped,
            )
