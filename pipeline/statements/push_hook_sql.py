"""SQL of the push hooks (migrations/sql/0016_push_hooks.sql): statement texts and
parameters, no I/O. Every statement but the lookup by hook id (a delivery's, which
names no tenant) names its tenant.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from pipeline.push_hooks.hooks import PushHook
from pipeline.statements.sql import Query

_SELECT = (
    "SELECT hook_id, tenant_id, repo_name, platform, clone_url, credential,"
    " extract(epoch from created_at)::float8 FROM push_hooks"
)


def add(hook: PushHook) -> Query:
    return Query(
        "INSERT INTO push_hooks (hook_id, tenant_id, repo_name, platform, clone_url,"
        " credential, created_at) VALUES (%(hook_id)s, %(tenant)s, %(repo)s, %(platform)s,"
        " %(clone_url)s, %(credential)s, to_timestamp(%(created_at)s))",
        {
            "hook_id": hook.hook_id,
            "tenant": hook.tenant,
            "repo": hook.repo,
            "platform": hook.platform.value,
            "clone_url": hook.clone_url,
            "credential": hook.credential,
            "created_at": hook.created_at,
        },
    )


def get(hook_id: str) -> Query:
    return Query(f"{_SELECT} WHERE hook_id = %(hook_id)s", {"hook_id": hook_id})


def list_(tenant: str, repo: str | None) -> Query:
    return Query(
        f"{_SELECT} WHERE tenant_id = %(tenant)s"
        " AND (%(repo)s::text IS NULL OR repo_name = %(repo)s) ORDER BY repo_name, platform",
        {"tenant": tenant, "repo": repo},
    )


def remove(tenant: str, hook_id: str) -> Query:
    return Query(
        "DELETE FROM push_hooks WHERE tenant_id = %(tenant)s AND hook_id = %(hook_id)s",
        {"tenant": tenant, "hook_id": hook_id},
    )
