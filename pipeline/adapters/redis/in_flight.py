"""Which jobs the broker still holds messages for in Redis (the fake: adapters/fakes/in_flight.py).

kombu's Redis transport keeps a queue as a list of JSON messages (one list per priority
step: ``name`` and ``name\\x06\\x16<n>``) and a delivered, unacknowledged message in the
``unacked`` hash as ``[message, exchange, routing_key]``; a message's body is JSON,
base64-encoded. Every task of a job carries ``"job_id": "<uuid>"`` in its keyword
arguments (a stage message in ``message.job_id``), which is what is looked for.

The lists and the hash are read in one MULTI/EXEC, so a message that moves from a queue
to ``unacked`` (delivered) while they are read is seen in one of the two. A message is
not seen in the instant between a worker's BRPOP and its write to ``unacked``: the
sweeper asks only about jobs idle for minutes, and a redundant recovery is harmless.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from config.queues import HELD_KEY_PREFIX, LEASE_KEY_PREFIX, LEASE_TTL_S
from pipeline.errors import StoreUnavailableError

UNACKED_KEY = "unacked"  # kombu's default ``unacked_key``
UNACKED_INDEX_KEY = "unacked_index"  # kombu's default ``unacked_index_key``
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)  # kombu's default steps besides 0 (the bare queue name)
_JOB_ID = re.compile(rb'"job_id":\s*"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                     rb'[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"')  # fmt: skip


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def queue_keys(queues: Iterable[str]) -> list[str]:
    """Every Redis list that holds messages of ``queues``."""
    return [
        key
        for name in queues
        for key in (name, *(f"{name}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS))
    ]


def job_ids_in(raw: bytes | str) -> set[str]:
    """The job ids a stored kombu message (or an ``unacked`` entry) names; a message
    that is not kombu's JSON names none."""
    data = raw.encode() if isinstance(raw, str) else raw
    found = {m.decode().lower() for m in _JOB_ID.findall(data)}
    try:
        decoded: Any = json.loads(data)
    except ValueError:
        return found
    message = decoded[0] if isinstance(decoded, list) and decoded else decoded
    body = message.get("body") if isinstance(message, dict) else None
    if isinstance(body, str):
        try:
            found |= {m.decode().lower() for m in _JOB_ID.findall(base64.b64decode(body))}
        except (binascii.Error, ValueError):
            found |= {m.decode().lower() for m in _JOB_ID.findall(body.encode())}
    return found


class RedisInFlight:
    """An :class:`~pipeline.ports.InFlight` over the broker's Redis."""

    def __init__(
        self,
        client: redis.Redis[Any],
        queues: Sequence[str],
        *,
        unacked_key: str = UNACKED_KEY,
        unclaimed_after_s: float = LEASE_TTL_S,
    ) -> None:
        self._client = client
        self._keys = queue_keys(queues)
        self._unacked_key = unacked_key
        self._unclaimed_after_s = unclaimed_after_s

    def job_ids(self) -> set[str]:
        pipe = self._client.pipeline(transaction=True)
        for key in self._keys:
            pipe.lrange(key, 0, -1)
        pipe.hvals(self._unacked_key)
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailableError("redis", f"reading the broker's messages: {exc}") from exc
        found: set[str] = set()
        for messages in replies:
            for raw in messages:
                found |= job_ids_in(raw)
        return found

    def restore_orphans(self) -> int:
        """Give back to their queues the messages held by workers whose lease ran out
        (tasks/transport.py records the holders, workers/lease.py keeps the leases);
        the number of messages given back.

        As kombu restores a message (``QoS.restore_by_tag``): in one transaction that
        watches ``unacked``, the entry leaves ``unacked`` and its index and the message,
        marked redelivered, goes to the front of its queue (the end BRPOP reads). A tag
        already acknowledged, or restored by the visibility timeout, is only forgotten.

        Also given back: a message in ``unacked`` that no holder claims, delivered more
        than ``unclaimed_after_s`` ago. The transport records the holder just after
        kombu writes ``unacked``; a worker killed between the two left a message that
        no lease covers, which the sweeper counted as in flight (so it never recovered
        the job) until kombu's visibility timeout, an hour. A live worker records its
        tag within that instant, so only lost messages are that old and unclaimed.
        """
        restored = 0
        claimed: set[str] = set()
        try:
            for key in self._client.scan_iter(match=HELD_KEY_PREFIX + "*", count=100):
                holder = _text(key)[len(HELD_KEY_PREFIX) :]
                tags = [_text(tag) for tag in self._client.hkeys(key)]
                if self._client.exists(LEASE_KEY_PREFIX + holder):
                    claimed.update(tags)
                    continue
                for tag in tags:
                    restored += self._restore(tag, key)
            cutoff = time.time() - self._unclaimed_after_s
            for tag in self._client.zrangebyscore(UNACKED_INDEX_KEY, "-inf", cutoff):
                if _text(tag) not in claimed:
                    restored += self._restore(_text(tag), None)
        except redis.RedisError as exc:
            raise StoreUnavailableError(
                "redis", f"restoring a dead worker's messages: {exc}"
            ) from exc
        return restored

    def _restore(self, tag: str, held_key: Any) -> int:
        done = 0

        def restore(pipe: Any) -> None:
            nonlocal done
            raw = pipe.hget(self._unacked_key, tag)
            pipe.multi()
            if held_key is not None:
                pipe.hdel(held_key, tag)
            if raw is None:
                return
            message, _exchange, routing_key = json.loads(raw)
            if int((message.get("properties") or {}).get("priority") or 0) != 0:
                return  # not a queue of ours (they are all priority 0): leave it to kombu
            for part in ("headers", "properties"):
                if isinstance(message.get(part), dict):
                    message[part]["redelivered"] = True
            pipe.zrem(UNACKED_INDEX_KEY, tag)
            pipe.hdel(self._unacked_key, tag)
            pipe.rpush(routing_key, json.dumps(message))
            done = 1

        self._client.transaction(restore, self._unacked_key)  # type: ignore[no-untyped-call]
        return done
