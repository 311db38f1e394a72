"""Bounded broker queues in Redis: a message is LPUSHed only while its queue is below its bound.

The queue is the very list kombu's Redis transport consumes: a priority-0 message of
queue ``q`` lives in the list named ``q`` (``Channel._q_for_pri``; priorities 1-9 use
``q<sep><n>`` lists, which Quarry does not use and which are not counted). kombu's
``_put`` is a bare ``LPUSH q <message JSON>`` for a queue without ``x-expires``, and
consumers ``BRPOP`` the other end, so pushing the same JSON here is a publish. The
``_kombu.binding.<exchange>`` sets are read only when a message is routed through an
exchange; Celery publishes to a direct queue on the anonymous exchange (routing key =
queue name) and so do we, so nothing else needs writing. kombu's ``global_keyprefix``
transport option would rename the list: Quarry does not set it.

Check and push are ONE Lua script (loaded once, run by EVALSHA): LLEN, compare with the
bound, LPUSH only if the whole batch fits. No other client can slip in between, so a
bound holds under any number of producers.

Must not import: celery, kombu, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from pipeline.errors import QueueFullError, StoreUnavailableError
from pipeline.stages.admission import RetryAfter, check_batch, checked_bounds, default_retry_after_s

# KEYS[1]: the queue's list. ARGV[1]: its bound. ARGV[2..]: the messages, oldest first.
# Returns {1, depth after the push} or {0, depth} when the batch does not fit.
# LPUSH of several values in one call leaves the same order as one LPUSH each (the first
# is consumed first); `unpack` is sliced because Lua's C stack takes ~8000 values at most.
PUSH_SCRIPT = """
local depth = redis.call('LLEN', KEYS[1])
if depth + #ARGV - 1 > tonumber(ARGV[1]) then
  return {0, depth}
end
for first = 2, #ARGV, 1000 do
  depth = redis.call('LPUSH', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
return {1, depth}
"""


@contextmanager
def _redis_errors(action: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailableError("redis", f"admission {action}: {exc}") from exc


class RedisAdmission:
    """An :class:`~pipeline.ports.Admission` over the broker's Redis.

    ``bounds`` maps queue names to their bound; other queues get ``default_bound``. Every
    bound is an int >= 1 (else :class:`~pipeline.errors.ConfigError`). ``retry_after_s``
    answers (queue, depth, bound) -> seconds for a refused push; the default is
    :func:`pipeline.stages.admission.default_retry_after_s` (1 s at the bound, more past it).
    A Redis that cannot be reached raises :class:`~pipeline.errors.StoreUnavailableError`.
    """

    def __init__(
        self,
        client: redis.Redis[Any],
        bounds: Mapping[str, int],
        *,
        default_bound: int,
        retry_after_s: RetryAfter | None = None,
    ) -> None:
        self._bounds = checked_bounds(bounds, default_bound)
        self._default_bound = default_bound
        self._retry_after_s = retry_after_s or default_retry_after_s
        self._client = client
        # Registered once: each call is an EVALSHA (the script is loaded on a NOSCRIPT).
        self._push = client.register_script(PUSH_SCRIPT)

    def bound(self, queue: str) -> int:
        return self._bounds.get(queue, self._default_bound)

    def depth(self, queue: str) -> int:
        with _redis_errors("depth"):
            return int(self._client.llen(queue))

    def fill_ratio(self, queue: str) -> float:
        """Depth over bound: 1.0 is full (it may pass 1.0 if the bound was lowered)."""
        return self.depth(queue) / self.bound(queue)

    def push(self, queue: str, message: bytes) -> int:
        return self._run(queue, [message])

    def push_many(self, queue: str, messages: Sequence[bytes]) -> int:
        """Push all of ``messages`` (oldest first) or none: one script call. Returns the
        depth after the push; QueueFullError if they do not all fit now,
        InvalidInputError if there are more than the bound (they never could)."""
        if not messages:
            return self.depth(queue)
        check_batch(queue, len(messages), self.bound(queue))
        return self._run(queue, messages)

    def _run(self, queue: str, messages: Sequence[bytes]) -> int:
        bound = self.bound(queue)
        with _redis_errors("push"):
            admitted, depth = self._push(keys=[queue], args=[bound, *messages])
        if not admitted:
            depth = int(depth)
            raise QueueFullError(queue, depth, bound, self._retry_after_s(queue, depth, bound))
        return int(depth)
