"""The in-memory fake of the webhook key store: the same contract as PgWebhookKeyStore
(pipeline.adapters.postgres.webhook_key_store) without its server; the contract tests
run both.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading

from pipeline.jobs import check_tenant
from pipeline.webhooks.tenant_keys import KeyState


class InMemoryWebhookKeyStore:
    def __init__(self) -> None:
        self._states: dict[str, KeyState] = {}
        self._lock = threading.Lock()

    def state(self, tenant: str) -> KeyState:
        check_tenant(tenant)
        with self._lock:
            return self._states.get(tenant, KeyState())

    def rotate(self, tenant: str, *, now: float, overlap_s: float) -> KeyState:
        check_tenant(tenant)
        with self._lock:
            rotated = self._states.get(tenant, KeyState()).rotated(now=now, overlap_s=overlap_s)
            self._states[tenant] = rotated
            return rotated
