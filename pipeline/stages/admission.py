"""The policy of bounded queues, shared by every Admission adapter: bounds and back-off.

A queue's bound is the most messages it may hold waiting (pushed, not yet taken by a
worker); a push that would pass it is refused with a
:class:`~pipeline.errors.QueueFullError` that says when to try again. Messages a worker
has taken but not yet acknowledged (acks_late) do not count: they are no longer waiting.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipeline.errors import ConfigError, InvalidInputError

# (queue, depth, bound) -> seconds to wait before pushing again
RetryAfter = Callable[[str, int, int], float]

RETRY_AFTER_BASE_S = 1.0
RETRY_AFTER_MAX_S = 30.0


def default_retry_after_s(queue: str, depth: int, bound: int) -> float:
    """1 s at the bound, scaled by how far past it the queue is, capped at 30 s.

    A queue is refused at ``depth == bound`` (fill 1.0), so the usual answer is 1 s: long
    enough for workers to take a few messages, short enough that a producer does not
    idle. A queue far past its bound (the bound was lowered, or something pushed around
    admission) waits proportionally longer: fill 3.0 waits 3 s.
    """
    del queue  # the same policy for every queue
    fill = depth / bound if bound > 0 else 1.0
    return min(RETRY_AFTER_MAX_S, RETRY_AFTER_BASE_S * max(1.0, fill))


def checked_bounds(bounds: Mapping[str, int], default_bound: int) -> dict[str, int]:
    """The bounds as a dict; a ConfigError names a bound that is not an int >= 1."""
    named = {f"queue_bounds[{queue!r}]": bound for queue, bound in bounds.items()}
    named["queue_default_bound"] = default_bound
    for name, bound in named.items():
        if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {bound!r}")
    return dict(bounds)


def check_batch(queue: str, size: int, bound: int) -> None:
    """A batch larger than the bound could never be admitted: the caller must split it."""
    if size > bound:
        raise InvalidInputError(
            f"a batch of {size} messages can never fit queue {queue!r} (bound {bound}); "
            "send it in smaller batches"
        )
