"""The in-memory Admission fake: bounded lists with the semantics of the Redis adapter.

Pushes go to the left of a list and :meth:`InMemoryAdmission.pop` takes from the right,
as kombu's LPUSH / BRPOP do, so the oldest message comes out first. A lock makes check
and push one step, as the Lua script does in Redis.

Must not import: celery, kombu, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence

from pipeline.errors import QueueFullError
from pipeline.stages.admission import RetryAfter, check_batch, checked_bounds, default_retry_after_s


class InMemoryAdmission:
    """An :class:`~pipeline.ports.Admission` over dicts of deques (same arguments as
    :class:`~pipeline.adapters.redis.admission.RedisAdmission`, without the client)."""

    def __init__(
        self,
        bounds: Mapping[str, int] | None = None,
        *,
        default_bound: int,
        retry_after_s: RetryAfter | None = None,
    ) -> None:
        self._bounds = checked_bounds(bounds or {}, default_bound)
        self._default_bound = default_bound
        self._retry_after_s = retry_after_s or default_retry_after_s
        self._queues: dict[str, deque[bytes]] = {}
        self._lock = threading.Lock()

    def bound(self, queue: str) -> int:
        return self._bounds.get(queue, self._default_bound)

    def depth(self, queue: str) -> int:
        with self._lock:
            return len(self._queues.get(queue, ()))

    def fill_ratio(self, queue: str) -> float:
        return self.depth(queue) / self.bound(queue)

    def push(self, queue: str, message: bytes) -> int:
        return self._push(queue, [message])

    def push_many(self, queue: str, messages: Sequence[bytes]) -> int:
        if not messages:
            return self.depth(queue)
        check_batch(queue, len(messages), self.bound(queue))
        return self._push(queue, messages)

    def pop(self, queue: str) -> bytes | None:
        """Test helper: take the oldest message, as a worker would; None when empty."""
        with self._lock:
            items = self._queues.get(queue)
            return items.pop() if items else None

    def _push(self, queue: str, messages: Sequence[bytes]) -> int:
        bound = self.bound(queue)
        with self._lock:
            items = self._queues.setdefault(queue, deque())
            depth = len(items)
            admitted = depth + len(messages) <= bound
            if admitted:
                items.extendleft(messages)
                depth = len(items)
        if not admitted:
            raise QueueFullError(queue, depth, bound, self._retry_after_s(queue, depth, bound))
        return depth
