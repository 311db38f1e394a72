"""The broker message ``app.send_task(name, kwargs=...)`` would publish, built without a broker.

Celery's path, step by step, and what stands for each step here:

1. ``app.amqp.router.route`` picks the queue (config/queues.py ``TASK_ROUTES``); a
   direct-exchange queue is published on the anonymous exchange with the queue's name
   as routing key (``amqp.send_task_message``). Routes are resolved once per task name.
2. ``amqp.create_task_message`` builds headers, properties and body (protocol 2). It is
   called as ``send_task`` calls it: ``reply_to`` is the app's ``thread_oid``, root and
   parent ids come from the worker task being run, if any. ``kwargsrepr`` is the same
   string Celery's ``saferepr`` gives, by a faster path for plain JSON values (saferepr
   is three quarters of the cost of a message otherwise).
3. ``Producer.publish``: the body is serialized (``task_serializer``, json) and
   compressed if ``task_compression`` says so; ``delivery_mode`` from the queue's
   exchange, else ``task_default_delivery_mode``.
4. kombu's virtual ``Channel.prepare_message`` / ``basic_publish``: ``priority`` 0, the
   body base64-encoded (``body_encoding``), a fresh ``delivery_tag``, ``delivery_info``
   ``{exchange, routing_key}``; the Redis ``_put`` then LPUSHes the message's JSON.

Not done, on purpose: the ``task-sent`` event (``task_send_sent_event``; Flower sees the
task from ``task-received`` on), ``backend.on_task_call`` (we do not wait on results),
the ``before/after_task_publish`` signals and declaring the queue (workers declare it).

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.compression import compress
from kombu.entity import maybe_delivery_mode
from kombu.serialization import dumps as serialize
from kombu.transport.virtual.base import Base64
from kombu.utils.json import dumps as json_dumps
from kombu.utils.uuid import uuid

from pipeline.errors import ConfigError
from tasks.kwargs_repr import kwargs_repr

_BASE64 = Base64()


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message ready for its queue: the task id and the bytes to push."""

    task_id: str
    queue: str
    message: bytes


class TaskEnvelopes:
    """Builds, for one Celery app, the exact message its ``send_task`` would publish."""

    def __init__(self, app: Celery) -> None:
        options = app.conf.broker_transport_options or {}
        if options.get("global_keyprefix"):
            raise ConfigError("broker transport option global_keyprefix is not supported")
        encoding = options.get("body_encoding", "base64")
        if encoding != "base64":
            raise ConfigError(f"broker transport option body_encoding={encoding!r}: not base64")
        self._app = app
        self._amqp = app.amqp
        self._serializer: str = app.conf.task_serializer
        self._compression: str | None = app.conf.task_compression
        self._routes: dict[str, tuple[str, int]] = {}

    def queue_for(self, task_name: str) -> str:
        return self._route(task_name)[0]

    def build(
        self,
        task_name: str,
        kwargs: dict[str, Any],
        *,
        countdown: float | None = None,
        task_id: str | None = None,
    ) -> Envelope:
        queue, delivery_mode = self._route(task_name)
        task_id = task_id or uuid()
        root_id = parent_id = None
        parent = self._app.current_worker_task
        if parent is not None:
            root_id = parent.request.root_id or parent.request.id
            parent_id = parent.request.id
        headers, properties, body, _ = self._amqp.create_task_message(
            task_id,
            task_name,
            None,
            kwargs,
            countdown,
            reply_to=self._app.thread_oid,
            root_id=root_id,
            parent_id=parent_id,
            argsrepr="()",
            kwargsrepr=kwargs_repr(kwargs, self._amqp.kwargsrepr_maxsize),
        )
        properties["delivery_mode"] = delivery_mode
        serialized = serialize(body, serializer=self._serializer)  # type: ignore[no-untyped-call]
        content_type, content_encoding, data = serialized
        if self._compression:
            data, headers["compression"] = compress(data, self._compression)  # type: ignore[no-untyped-call]
        properties["delivery_info"] = {"exchange": "", "routing_key": queue}
        properties["priority"] = 0
        properties["body_encoding"] = "base64"
        properties["delivery_tag"] = uuid()
        message = {
            "body": _BASE64.encode(data),  # type: ignore[no-untyped-call]
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": properties,
        }
        text: str = json_dumps(message)  # type: ignore[no-untyped-call]
        return Envelope(task_id, queue, text.encode())

    def _route(self, task_name: str) -> tuple[str, int]:
        route = self._routes.get(task_name)
        if route is None:
            route = self._routes[task_name] = self._resolve(task_name)
        return route

    def _resolve(self, task_name: str) -> tuple[str, int]:
        amqp = self._amqp
        options = amqp.router.route({}, task_name, None, {}, None)
        queue = options.get("queue")
        if queue is None and options.get("exchange") is None:
            queue = amqp.default_queue
        if isinstance(queue, str):
            queue = amqp.queues[queue]
        exchange = getattr(queue, "exchange", None)
        if queue is None or exchange is None or exchange.type != "direct":
            # Celery would route it through an exchange: a direct push cannot stand for that.
            raise ConfigError(f"task {task_name!r} is not routed to a queue of a direct exchange")
        mode = exchange.delivery_mode or self._app.conf.task_default_delivery_mode
        return str(queue.name), int(maybe_delivery_mode(mode))  # type: ignore[no-untyped-call]
