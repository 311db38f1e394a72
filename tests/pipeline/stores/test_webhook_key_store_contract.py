"""One contract for the webhook key store: the fake and PostgreSQL. A tenant starts at
generation 1; a rotation moves it on by one, keeps the previous generation signing for
the overlap, and never touches another tenant; two rotations at once make two."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.webhook_key_store import InMemoryWebhookKeyStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.webhook_key_store import PgWebhookKeyStore
from pipeline.errors import ConflictError, InvalidInputError
from pipeline.ports import WebhookKeyStore
from pipeline.webhooks.tenant_keys import KeyState

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    from tests.databases import fresh_pg_database

    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "webhook_keys") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[WebhookKeyStore]:
    if request.param == "memory":
        yield InMemoryWebhookKeyStore()
        return
    with PgWebhookKeyStore(request.getfixturevalue("pg_dsn"), pool_size=4) as pg:
        yield pg


@pytest.fixture
def t() -> Callable[[str], str]:
    run_id = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{run_id}"


def test_a_tenant_never_rotated_is_at_generation_one(
    store: WebhookKeyStore, t: Callable[[str], str]
) -> None:
    assert store.state(t("fresh")) == KeyState()
    assert store.state(t("fresh")).signing_generations(NOW) == (1,)


def test_a_rotation_keeps_the_previous_generation_for_the_overlap_only(
    store: WebhookKeyStore, t: Callable[[str], str]
) -> None:
    tenant, other = t("acme"), t("other")
    rotated = store.rotate(tenant, now=NOW, overlap_s=3600)
    assert rotated == KeyState(2, NOW + 3600, NOW)
    assert store.state(tenant) == rotated
    assert rotated.signing_generations(NOW + 10) == (2, 1)
    assert rotated.signing_generations(NOW + 3600) == (2,)
    assert store.state(other) == KeyState()  # another tenant is untouched
    again = store.rotate(tenant, now=NOW + 100, overlap_s=0)
    assert again == KeyState(3, None, NOW + 100)
    assert again.signing_generations(NOW + 101) == (3,)


def test_two_rotations_at_once_make_two_generations(
    store: WebhookKeyStore, t: Callable[[str], str]
) -> None:
    tenant = t("race")
    barrier = threading.Barrier(2)

    def rotate() -> None:
        barrier.wait()
        store.rotate(tenant, now=NOW, overlap_s=0)  # always taken: the race is the count

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.state(tenant).generation == 3


@pytest.mark.parametrize("overlap_s", [-1.0, 30 * 24 * 3600 + 1.0])
def test_an_overlap_out_of_bounds_is_refused_and_nothing_changes(
    store: WebhookKeyStore, t: Callable[[str], str], overlap_s: float
) -> None:
    tenant = t("bounds")
    with pytest.raises(InvalidInputError, match="overlap_s"):
        store.rotate(tenant, now=NOW, overlap_s=overlap_s)
    assert store.state(tenant) == KeyState()


def test_a_bad_tenant_name_is_refused(store: WebhookKeyStore) -> None:
    with pytest.raises(InvalidInputError):
        store.state("Not A Tenant")


def test_a_rotation_with_an_overlap_during_an_overlap_is_refused_and_changes_nothing(
    store: WebhookKeyStore, t: Callable[[str], str]
) -> None:
    tenant = t("twice")
    first = store.rotate(tenant, now=NOW, overlap_s=3600)
    # It would end generation 1 at once, cutting the hour the first rotation promised.
    with pytest.raises(ConflictError, match="overlap still runs"):
        store.rotate(tenant, now=NOW + 10, overlap_s=60)
    assert store.state(tenant) == first
    # Once the overlap ended, or with no overlap (a leaked secret), it is taken.
    later = store.rotate(tenant, now=NOW + 3600, overlap_s=60)
    assert later.generation == 3 and later.signing_generations(NOW + 3601) == (3, 2)
    now = store.rotate(tenant, now=NOW + 3610, overlap_s=0)
    assert now.generation == 4 and now.signing_generations(NOW + 3611) == (4,)
