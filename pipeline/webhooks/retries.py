"""When a webhook delivery that failed is tried again: the retry schedule, pure.

The wait after failed attempt ``n`` (1-based) is ``min(cap_s, base_s * 2**(n-1))``
scaled by a random factor in [0.5, 1.0] ("equal jitter"). Full jitter (a factor in
[0, 1]) spreads retries more, but its waits can all come out near 0, so that the
retries of a delivery would give no outage a guaranteed time to end in; with equal
jitter the waits of ``max_attempts`` attempts add up to at least half of their nominal
sum, and at most that sum (:meth:`RetrySchedule.window_s`).

With the default settings (40 s, 600 s, 10 attempts) the nine waits are 20-40, 40-80,
80-160, 160-320 s and then 300-600 s five times: 30 to 60 minutes from the first attempt
to the last, plus the attempts themselves (each at most ``webhook_timeout_s``).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

_MAX_EXPONENT = 62  # past any cap a setting allows; keeps the float finite


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """``max_attempts`` deliveries in all, the waits between them doubling from
    ``base_s`` up to ``cap_s``, each scaled by a random factor in [0.5, 1.0]."""

    base_s: float
    cap_s: float
    max_attempts: int

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.cap_s > 0):
            raise ValueError(f"retry base {self.base_s} s and cap {self.cap_s} s must be > 0")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts {self.max_attempts}: at least one attempt")

    def longest_s(self, attempt: int) -> float:
        """The longest wait after failed attempt ``attempt`` (1-based): no jitter."""
        if attempt < 1:
            raise ValueError(f"attempt {attempt}: attempts count from 1")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        return min(self.cap_s, self.base_s * 2.0**exponent)

    def delay_s(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The wait after failed attempt ``attempt``: :meth:`longest_s` scaled by 0.5-1.0
        (``rng`` gives [0, 1)), so that deliveries to a receiver that comes back do not
        all arrive at once."""
        return self.longest_s(attempt) * (0.5 + min(max(rng(), 0.0), 1.0) / 2)

    def gives_up(self, attempt: int) -> bool:
        """Whether failed attempt ``attempt`` is the last one."""
        return attempt >= self.max_attempts

    def window_s(self) -> tuple[float, float]:
        """The shortest and the longest sum of the waits from the first attempt to the
        last (the attempts' own durations not counted)."""
        longest = sum(self.longest_s(n) for n in range(1, self.max_attempts))
        return longest / 2, longest
