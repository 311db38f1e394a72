"""One contract for the push hook store: the fake and PostgreSQL. A hook is found by its
id from anywhere (a delivery names no tenant), but listed and removed only by its own
tenant; a repository has at most one hook a platform."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.push_hook_store import InMemoryPushHookStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.push_hook_store import PgPushHookStore
from pipeline.errors import ConflictError, InvalidInputError
from pipeline.ports import PushHookStore
from pipeline.push_hooks.hooks import Platform, PushHook, new_hook_id


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    from tests.databases import fresh_pg_database

    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "push_hooks") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[PushHookStore]:
    if request.param == "memory":
        yield InMemoryPushHookStore()
        return
    with PgPushHookStore(request.getfixturevalue("pg_dsn"), pool_size=2) as pg:
        yield pg


@pytest.fixture
def t() -> Callable[[str], str]:
    run_id = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{run_id}"


def hook(tenant: str, repo: str = "acme/widgets", platform: Platform = Platform.GITHUB) -> PushHook:
    url = f"https://{platform.value}.com/{repo}.git"
    return PushHook(new_hook_id(), tenant, repo, platform, url, None, 1_800_000_000.0)


def test_a_hook_is_found_by_its_id_and_listed_by_its_tenant_only(
    store: PushHookStore, t: Callable[[str], str]
) -> None:
    mine, theirs = hook(t("acme")), hook(t("evil"))
    store.add(mine)
    store.add(theirs)
    assert store.get(mine.hook_id) == mine
    assert store.list(mine.tenant) == [mine]
    assert store.list(mine.tenant, "acme/widgets") == [mine]
    assert store.list(mine.tenant, "acme/other") == []
    assert store.get(new_hook_id()) is None
    assert store.get("not-a-hook-id") is None


def test_a_tenant_cannot_remove_another_tenants_hook(
    store: PushHookStore, t: Callable[[str], str]
) -> None:
    mine = hook(t("acme"))
    store.add(mine)
    assert store.remove(t("evil"), mine.hook_id) is False
    assert store.get(mine.hook_id) == mine
    assert store.remove(mine.tenant, mine.hook_id) is True
    assert store.get(mine.hook_id) is None
    assert store.remove(mine.tenant, mine.hook_id) is False


def test_one_hook_per_repository_and_platform(
    store: PushHookStore, t: Callable[[str], str]
) -> None:
    tenant = t("acme")
    first = hook(tenant)
    store.add(first)
    with pytest.raises(ConflictError, match="github push hook already"):
        store.add(hook(tenant))
    gitlab = hook(tenant, platform=Platform.GITLAB)
    store.add(gitlab)  # another platform, another hook
    store.add(hook(t("other")))  # another tenant's repository of the same name
    assert store.list(tenant) == [first, gitlab]


def test_a_bad_tenant_name_is_refused(store: PushHookStore) -> None:
    with pytest.raises(InvalidInputError):
        store.list("Not A Tenant")
