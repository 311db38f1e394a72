"""The embed task flushes a message at once when no flush is in flight (a small job does
not wait for the flush timer), and batches as before while one runs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from config.queues import EMBED_CHUNKS_TASK
from tasks.app import create_app
from tasks.embed import IdleFlushBatches


class Pool:
    """The worker's pool: records each flush and calls nothing back by itself."""

    def __init__(self) -> None:
        self.flushes: list[tuple[list[Any], Any]] = []

    def apply_async(self, target: Any, args: Any, accept_callback: Any, callback: Any) -> None:
        accept_callback(1, 0.0)
        self.flushes.append((args[1][0], callback))


class Request(SimpleNamespace):
    def acknowledge(self) -> None:
        self.acked = True


def _request(n: int) -> Request:
    return Request(
        id=f"r{n}",
        name=EMBED_CHUNKS_TASK,
        eta=None,
        task=SimpleNamespace(acks_late=True),
        _payload=((), {"message": {"n": n}}, {}),
        delivery_info={},
        hostname="embed@test",
        ignore_result=False,
        reply_to=None,
        correlation_id=None,
        request_dict={},
        acked=False,
    )


def _embed_task() -> Any:
    app = create_app()
    app.loader.import_default_modules()
    task = app.tasks[EMBED_CHUNKS_TASK]
    assert isinstance(task, IdleFlushBatches)
    task._pool = Pool()
    return task


def test_a_message_reaching_an_idle_worker_is_flushed_at_once() -> None:
    task = _embed_task()
    first = _request(1)
    task._buffer.put(first)
    assert task.flush_if_idle()
    assert [r.id for r in task._pool.flushes[0][0]] == ["r1"]
    assert task.in_flight == 1 and task._buffer.empty()
    assert not first.acked  # acks_late: only once the flush returned
    task._pool.flushes[0][1](None)
    assert first.acked and task.in_flight == 0


def test_while_a_flush_runs_the_next_messages_wait_and_go_together() -> None:
    task = _embed_task()
    task._buffer.put(_request(1))
    assert task.flush_if_idle()
    task._buffer.put(_request(2))
    assert not task.flush_if_idle()  # one in flight: buffered for the timer / flush_every
    task._buffer.put(_request(3))
    assert not task.flush_if_idle()
    assert len(task._pool.flushes) == 1 and task._buffer.qsize() == 2
    task._pool.flushes[0][1](None)  # the first flush returned: idle again
    task._buffer.put(_request(4))
    assert task.flush_if_idle()
    assert [r.id for r in task._pool.flushes[1][0]] == ["r2", "r3", "r4"]
    assert task.flushes_started == 2 and task.idle_flushes == 2


def test_the_timer_still_flushes_while_one_is_in_flight() -> None:
    task = _embed_task()
    task._buffer.put(_request(1))
    task.flush_if_idle()
    task._buffer.put(_request(2))
    task._do_flush()  # what the flush_interval timer calls
    assert [len(batch) for batch, _ in task._pool.flushes] == [1, 1]
    assert task.in_flight == 2
    for _, done in task._pool.flushes:
        done(None)
    assert task.in_flight == 0


def test_nothing_buffered_nothing_flushed() -> None:
    task = _embed_task()
    assert not task.flush_if_idle()
    assert task._pool.flushes == [] and task.flushes_started == 0
