"""The cpu worker's main process asks for a job sweep every ``job_sweep_interval_s``.

A thread of the main process (not of a pool child: children come and go) sends
``quarry.ingest.sweep`` to the ingest queue; a pool child runs it (tasks.ingest). Every
cpu worker asks, and the task itself runs at most once per interval across them, so
no extra process (a Celery beat) is needed and the sweep stops only when every cpu
worker does. A lost request is harmless: the next one comes an interval later.

The request is housekeeping and stays out of Flower: it is sent without the
``task-sent`` event (:class:`Unannounced`) and the task sends no events of its own
(``send_events=False``, tasks/ingest.py). The interval, and so how fast the sweep
gives back a dead worker's messages, stays as set.

Must not import: api/, cli/, drivers.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from config.queues import INGEST, SWEEP_JOBS_TASK

log = logging.getLogger("quarry.worker")


class Unannounced:
    """The event dispatcher of a send that Flower need not see: publishes nothing.

    ``task_send_sent_event`` is app-wide; Celery publishes ``task-sent`` through the
    dispatcher a send names (``event_dispatcher``), and calls nothing else of it.
    """

    def publish(self, *_: Any, **__: Any) -> None:
        return None


def start_sweep_timer(app: Any, interval_s: float) -> threading.Event:
    """Start the thread; set the returned event to stop it. ``interval_s`` > 0."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                app.send_task(
                    SWEEP_JOBS_TASK,
                    queue=INGEST,
                    expires=interval_s,
                    event_dispatcher=Unannounced(),
                )
            except Exception as exc:  # noqa: BLE001 (the broker may be down: try next time)
                log.warning("could not ask for a job sweep: %s", exc)

    threading.Thread(target=loop, name="quarry-sweep-timer", daemon=True).start()
    return stop


def connect_sweep_timer(app: Any, interval_s: float) -> None:
    """Start the thread when the worker is ready; stop it when the worker shuts down."""
    from celery import signals

    def on_ready(**_: Any) -> None:
        stop = start_sweep_timer(app, interval_s)
        signals.worker_shutdown.connect(lambda **_: stop.set(), weak=False)

    signals.worker_ready.connect(on_ready, weak=False)
