"""The Celery application: queues, routing, delivery guarantees.

``celery -A tasks.app`` finds ``app`` here, built on first access from the settings;
drivers, pools and the model are built per process after the fork, in workers/.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from config.endpoints import resolve_endpoints
from config.queues import ALL_QUEUES, INGEST, TASK_ROUTES
from config.settings import QuarrySettings, load_settings

# Redis redelivers an unacknowledged task only after the visibility timeout, which the
# settings keep above the hard time limit of the longest task. Every worker sweeps for
# such tasks every RESTORE_SWEEP_S (kombu's default scans only every 10th 10 s tick, so
# a task of a killed worker could wait 100 s past its timeout).
RESTORE_SWEEP_S = 10
TASK_MODULES = (
    "tasks.ingest",
    "tasks.chunk",
    "tasks.embed",
    "tasks.write",
    "tasks.graph",
    "tasks.commit",
    "tasks.webhook",
    "tasks.deletion",
    "tasks.models",
    "tasks.vectors",
)


def create_app(settings: QuarrySettings | None = None) -> Celery:
    settings = settings or load_settings()
    endpoints = resolve_endpoints(settings)
    app = Celery(
        "quarry",
        broker=endpoints.redis_url,
        backend=endpoints.redis_url,
        include=TASK_MODULES,
    )
    exchange = Exchange("quarry", type="direct")  # type: ignore[no-untyped-call]
    app.conf.update(
        task_queues=[
            Queue(name, exchange, routing_key=name)  # type: ignore[no-untyped-call]
            for name in ALL_QUEUES
        ],
        task_default_queue=INGEST,
        task_default_exchange="quarry",
        task_default_routing_key=INGEST,
        task_routes=TASK_ROUTES,
        # A task is acknowledged after it ran, and a worker lost mid-task gives it back:
        # the task is delivered again (tasks are idempotent), never lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Nobody reads a task's return value: jobs report through their own status (the
        # job store and board) and Flower through task events. Storing each task's
        # STARTED and SUCCESS state in Redis cost two writes per task on every stage.
        task_ignore_result=True,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_s,
            "unacked_restore_interval": RESTORE_SWEEP_S,
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_s
        },
        result_expires=86400,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
    )
    return app


_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    # `celery -A tasks.app` reads `app`; built on first access, so that importing this
    # module reads no settings and a bad setting surfaces where it is handled.
    global _app  # noqa: PLW0603 (one app per process, built once)
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_app()
    return _app


def celery_app() -> Celery:
    """This process's app (the one ``celery -A tasks.app`` runs)."""
    app: Celery = __getattr__("app")
    return app
