"""``/v1/webhooks/secret``: the tenant's webhook signing secret, and its rotation.

Every delivery of a tenant's jobs is signed with that tenant's own secret
(pipeline/webhooks/tenant_keys.py): a tenant verifies its events and cannot forge
another's. ``GET`` shows the current secret (derived, so it can always be shown again);
``POST /rotate`` makes a new one current, and the old one keeps signing every delivery
too (a second ``sha256=`` in the signature header) for ``overlap_s`` seconds (default a
day, at most 30 days), while the receivers are switched over.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from api.auth import AdminTenant, State
from pipeline.errors import ConfigError
from pipeline.webhooks.events import SIGNATURE_HEADER
from pipeline.webhooks.tenant_keys import (
    DEFAULT_OVERLAP_S,
    MAX_OVERLAP_S,
    KeyState,
    check_overlap,
    tenant_secret,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class Rotation(BaseModel):
    """How long the current secret keeps signing beside the new one."""

    overlap_s: float = Field(DEFAULT_OVERLAP_S, description="0 to 2592000 (30 days).")


@router.get("/secret")
def webhook_secret(tenant: AdminTenant, state: State, response: Response) -> dict[str, Any]:
    """The secret that verifies the tenant's deliveries (header ``X-Quarry-Signature-256``:
    ``sha256=`` + HMAC-SHA256 of ``"{timestamp}." + body``), and during a rotation's
    overlap until when the previous one still signs."""
    response.headers["Cache-Control"] = "no-store"  # it carries a secret
    return _answer(state, tenant, state.webhook_keys.state(tenant), time.time())


@router.post("/secret/rotate")
def rotate_webhook_secret(
    tenant: AdminTenant, state: State, body: Rotation, response: Response
) -> dict[str, Any]:
    """Make a new secret current; the previous one signs too for ``overlap_s`` seconds.
    409 for a rotation with an overlap while the previous overlap still runs (it would
    cut that overlap short); ``overlap_s`` 0 is always taken and ends older secrets now."""
    response.headers["Cache-Control"] = "no-store"
    check_overlap(body.overlap_s)
    now = time.time()
    rotated = state.webhook_keys.rotate(tenant, now=now, overlap_s=body.overlap_s)
    return _answer(state, tenant, rotated, now)


def _answer(state: State, tenant: str, keys: KeyState, now: float) -> dict[str, Any]:
    master = state.endpoints.webhook_secret.encode()
    if not master:
        raise ConfigError("webhook secret is empty: set QUARRY_WEBHOOK_SECRET")
    overlapping = len(keys.signing_generations(now)) > 1
    return {
        "secret": tenant_secret(master, tenant, keys.generation),
        "generation": keys.generation,
        "rotated_at": _iso(keys.rotated_at),
        "previous_signs_until": _iso(keys.previous_until) if overlapping else None,
        "signature_header": SIGNATURE_HEADER,
        "max_overlap_s": MAX_OVERLAP_S,
    }


def _iso(epoch_s: float | None) -> str | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC).isoformat()
