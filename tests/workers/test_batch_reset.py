"""The embed worker's batch task starts afresh when its consumer restarts (a lost broker
connection): no stale buffered request, no dead flush timer left to block new flushes."""

from __future__ import annotations

from typing import Any

from config.queues import EMBED_CHUNKS_TASK
from tasks.app import create_app
from workers.batch_reset import BatchesReset, reset_batches


class DeadTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _embed_task() -> Any:
    app = create_app()
    app.loader.import_default_modules()
    return app, app.tasks[EMBED_CHUNKS_TASK]


def test_reset_drops_the_stale_buffer_and_the_dead_timer() -> None:
    app, task = _embed_task()
    timer = DeadTimer()
    task._buffer.put("stale-1")
    task._buffer.put("stale-2")
    task._pending.put("stale-eta")
    task._tref = timer
    next(task._count)
    assert reset_batches(app.tasks) == 3
    assert task._buffer.empty() and task._pending.empty()
    assert task._tref is None and timer.cancelled
    assert next(task._count) == 1  # the flush-every count starts over
    assert reset_batches(app.tasks) == 0  # nothing left: a second reset is a no-op


def test_the_consumer_step_resets_at_every_start() -> None:
    app, task = _embed_task()
    task._tref = DeadTimer()
    task._buffer.put("stale")

    class Consumer:
        pass

    consumer = Consumer()
    consumer.app = app  # type: ignore[attr-defined]
    step = BatchesReset(consumer)
    step.start(consumer)
    assert task._tref is None and task._buffer.empty()
