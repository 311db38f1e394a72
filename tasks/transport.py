"""kombu's Redis transport, except that a malformed message does not stop the worker.

kombu pops a message with BRPOP and decodes the envelope before anything can catch an
error: a list entry that is not kombu's JSON (pushed by something that went around
admission, or cut short) raises ``JSONDecodeError`` out of the consumer's event loop,
and Celery stops the worker ("Unrecoverable error"). A restarted worker would go on,
but every message it had prefetched would wait for the visibility timeout.

Here such an entry is logged (its first bytes, escaped), kept on the capped list
``quarry:broker:malformed`` for an operator, and skipped; the worker goes on. The
envelope's own content is Celery's business: a bad body or an unknown task is already
rejected per message.

It also records which worker holds each delivered message: beside kombu's ``unacked``
hash, the hash ``quarry:broker:held:<holder>`` maps the delivery tag to the time it was
delivered, and an ack or reject removes it. The worker's main process keeps a lease
(``quarry:broker:lease:<holder>``, workers/lease.py) while it lives; the sweeper gives a
dead holder's messages back at once (pipeline/adapters/redis/in_flight.py) instead of
after the visibility timeout. A process that set no :data:`HOLDER` records nothing.

Workers select it with ``broker_transport = "tasks.transport:Transport"``.

Must not import: workers/, api/, cli/, drivers (it reaches Redis through kombu's own client).
"""

from __future__ import annotations

import json
import logging
import time
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis

from config.queues import HELD_KEY_PREFIX

log = logging.getLogger("quarry.broker")

MALFORMED_KEY = "quarry:broker:malformed"
MALFORMED_KEEP = 1000
SHOWN_BYTES = 300
TRANSPORT = "tasks.transport:Transport"
# This worker's holder id (workers/main.py sets it before consuming); None: not recorded.
HOLDER: str | None = None


def decode_envelope(raw: bytes | str) -> dict[str, Any] | None:
    """The message kombu stored, or None when ``raw`` is not one."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return message if isinstance(message, dict) else None


class QoS(kombu_redis.QoS):
    """kombu's ack emulation, recording the holder of each delivered message."""

    def append(self, message: Any, delivery_tag: Any) -> None:
        super().append(message, delivery_tag)  # type: ignore[no-untyped-call]
        self._held("hset", delivery_tag)

    def ack(self, delivery_tag: Any) -> None:
        super().ack(delivery_tag)  # type: ignore[no-untyped-call]
        self._held("hdel", delivery_tag)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]
        self._held("hdel", delivery_tag)

    def _held(self, command: str, delivery_tag: Any) -> None:
        # Bookkeeping: if it fails, the message still comes back after the broker's
        # visibility timeout, as it would without it.
        if HOLDER is None:
            return
        try:
            with self.channel.conn_or_acquire() as client:
                key = HELD_KEY_PREFIX + HOLDER
                if command == "hset":
                    client.hset(key, delivery_tag, f"{time.time():.3f}")
                else:
                    client.hdel(key, delivery_tag)
        except Exception:
            log.exception("could not record the holder of message %s", delivery_tag)


class Channel(kombu_redis.Channel):
    """kombu's channel with a BRPOP reader that skips a malformed message, and a QoS that
    records which worker holds each delivered message."""

    QoS = QoS

    def _brpop_read(self, **options: Any) -> bool:
        malformed: tuple[str, bytes | str] | None = None
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # As kombu does: disconnect, so the next iteration reconnects.
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = (dest.decode() if isinstance(dest, bytes) else dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            message = decode_envelope(item)
            if message is None:
                malformed = (dest, item)
            else:
                self.connection._deliver(message, dest)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()
            if malformed is not None:
                self._keep_malformed(*malformed)

    def _keep_malformed(self, queue: str, raw: bytes | str) -> None:
        data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
        log.error(
            "skipped a malformed message on queue %s (%d bytes, not kombu's JSON): %r",
            queue,
            len(data),
            data[:SHOWN_BYTES],
        )
        try:
            with self.conn_or_acquire() as client:
                client.pipeline().lpush(MALFORMED_KEY, data).ltrim(
                    MALFORMED_KEY, 0, MALFORMED_KEEP - 1
                ).execute()
        except Exception:
            log.exception("could not keep the malformed message on %s", MALFORMED_KEY)


class Transport(kombu_redis.Transport):
    Channel = Channel
