"""The in-memory fake of the push hook store: the same contract as PgPushHookStore
(pipeline.adapters.postgres.push_hook_store) without its server; the contract tests
run both.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import threading

from pipeline.errors import ConflictError
from pipeline.jobs import check_tenant
from pipeline.push_hooks.hooks import PushHook


class InMemoryPushHookStore:
    def __init__(self) -> None:
        self._hooks: dict[str, PushHook] = {}
        self._lock = threading.Lock()

    def add(self, hook: PushHook) -> None:
        check_tenant(hook.tenant)
        with self._lock:
            taken = any(
                (h.tenant, h.repo, h.platform) == (hook.tenant, hook.repo, hook.platform)
                for h in self._hooks.values()
            )
            if taken or hook.hook_id in self._hooks:
                raise ConflictError(
                    f"repo: {hook.repo!r} has a {hook.platform.value} push hook already;"
                    " remove it (quarry push-hook remove) to make a new one"
                )
            self._hooks[hook.hook_id] = hook

    def get(self, hook_id: str) -> PushHook | None:
        with self._lock:
            return self._hooks.get(hook_id)

    def list(self, tenant: str, repo: str | None = None) -> list[PushHook]:
        check_tenant(tenant)
        with self._lock:
            found = [
                h
                for h in self._hooks.values()
                if h.tenant == tenant and (repo is None or h.repo == repo)
            ]
        return sorted(found, key=lambda h: (h.repo, h.platform.value))

    def remove(self, tenant: str, hook_id: str) -> bool:
        check_tenant(tenant)
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None or hook.tenant != tenant:
                return False
            del self._hooks[hook_id]
            return True
