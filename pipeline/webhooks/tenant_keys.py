"""Each tenant's webhook signing secret, and its rotation with an overlap window.

A tenant's secret is derived, never stored: HMAC-SHA256 of the tenant and a generation
number under the service's webhook secret (``QUARRY_WEBHOOK_SECRET``, the master).
Knowing its own secret tells a tenant nothing of another's, so it cannot forge their
events; the store keeps only each tenant's generation and until when the previous one
still signs. A rotation makes the next generation current; during the overlap every
delivery carries two signatures (the new one first) in one header, so a receiver that
still checks the old secret keeps accepting events while it is switched over. Changing
the master secret changes every tenant's secret at once (no overlap): rotate tenants,
not the master.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from pipeline.errors import ConfigError, ConflictError, InvalidInputError

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_OVERLAP_S: Final = 24 * 3600.0
MAX_OVERLAP_S: Final = 30 * 24 * 3600.0
_CONTEXT: Final = b"quarry.webhook.tenant-secret.v1"


@dataclass(frozen=True, slots=True)
class KeyState:
    """A tenant's signing generation (1 until its first rotation) and, after a rotation,
    until when (epoch seconds) the previous generation still signs."""

    generation: int = 1
    previous_until: float | None = None
    rotated_at: float | None = None

    def signing_generations(self, now: float) -> tuple[int, ...]:
        """The generations a delivery at ``now`` is signed with, the current one first."""
        if self.previous_until is not None and now < self.previous_until and self.generation > 1:
            return (self.generation, self.generation - 1)
        return (self.generation,)

    def rotated(self, *, now: float, overlap_s: float) -> KeyState:
        """The state after a rotation at ``now``: the next generation, the current one
        signing too for ``overlap_s`` seconds. ConflictError for a rotation with an
        overlap while the previous one's still runs: it would end the generation before
        at once, cutting the overlap that rotation promised (overlap 0 is always allowed:
        a leaked secret is ended at once)."""
        check_overlap(overlap_s)
        if overlap_s > 0 and len(self.signing_generations(now)) > 1:
            raise overlap_conflict(self.previous_until)
        until = now + overlap_s if overlap_s > 0 else None
        return KeyState(self.generation + 1, until, now)


def overlap_conflict(previous_until: float | None) -> ConflictError:
    when = "" if previous_until is None else f" (until {previous_until:.0f}, epoch seconds)"
    return ConflictError(
        f"overlap_s: the previous rotation's overlap still runs{when}; rotate again after it"
        " ends, or with overlap_s 0 to end every older secret now"
    )


def check_overlap(overlap_s: float) -> float:
    """``overlap_s`` if it is between 0 and 30 days; else InvalidInputError naming it."""
    if not 0 <= overlap_s <= MAX_OVERLAP_S:
        raise InvalidInputError(
            f"overlap_s: {overlap_s:g} is not between 0 and {MAX_OVERLAP_S:.0f} (30 days)"
        )
    return overlap_s


def tenant_secret(master: bytes, tenant: str, generation: int) -> str:
    """The secret ``tenant`` verifies its deliveries with, at ``generation``."""
    if not master:
        raise ConfigError("webhook secret is empty: set QUARRY_WEBHOOK_SECRET")
    if generation < 1:
        raise ValueError(f"generation {generation}: generations count from 1")
    message = b"\x00".join((_CONTEXT, tenant.encode("utf-8"), str(generation).encode()))
    digest = hmac.new(master, message, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def signing_secrets(master: bytes, tenant: str, state: KeyState, now: float) -> list[bytes]:
    """The secrets a delivery of ``tenant`` at ``now`` is signed with, current first."""
    return [
        tenant_secret(master, tenant, generation).encode("ascii")
        for generation in state.signing_generations(now)
    ]
