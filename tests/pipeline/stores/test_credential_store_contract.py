"""One contract for the credential store: the fake and PostgreSQL. Rows are per tenant;
names and scopes are unique within a tenant only; the table holds ciphertext only."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.credential_store import InMemoryCredentialStore
from pipeline.adapters.postgres.credential_store import PgCredentialStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.credentials.cipher import CredentialCipher, new_credentials_key
from pipeline.credentials.material import CredentialKind
from pipeline.credentials.vault import CredentialVault
from pipeline.errors import ConflictError, NotFoundError
from pipeline.ports import CredentialStore
from tests.databases import fresh_pg_database

TOKEN = "qtok_contract_" + "x9Y8z7" * 5


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "credentials") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[CredentialStore]:
    if request.param == "memory":
        yield InMemoryCredentialStore()
        return
    with PgCredentialStore(request.getfixturevalue("pg_dsn")) as pg:
        yield pg


def vault(store: CredentialStore) -> CredentialVault:
    return CredentialVault(store, CredentialCipher(new_credentials_key()), clock=lambda: 1000.0)


def add(v: CredentialVault, tenant: str, name: str, scope: str, secret: str = TOKEN) -> None:
    v.add(tenant, name=name, kind=CredentialKind.HTTPS_TOKEN, scope=scope, secret=secret)


@pytest.fixture
def t() -> Callable[[str], str]:
    """Tenant names of this test alone (the PostgreSQL database is the module's)."""
    run_id = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{run_id}"


def test_a_credential_reads_back_for_its_tenant_only(
    store: CredentialStore, t: Callable[[str], str]
) -> None:
    v = vault(store)
    add(v, t("t-a"), "forge", "https://git.example.com/acme")
    [found] = store.list(t("t-a"))
    assert (found.name, found.kind, found.scope) == (
        "forge",
        CredentialKind.HTTPS_TOKEN,
        "https://git.example.com/acme",
    )
    assert found.created_at == found.rotated_at == 1000.0
    assert store.get(t("t-a"), "forge") == found
    assert store.get(t("t-b"), "forge") is None and store.list(t("t-b")) == []
    opened = v.for_url(t("t-a"), "https://git.example.com/acme/api.git")
    assert opened is not None and opened.secret == TOKEN


def test_name_and_scope_conflict_within_a_tenant_only(
    store: CredentialStore, t: Callable[[str], str]
) -> None:
    v = vault(store)
    add(v, t("t-a"), "forge", "https://git.example.com/acme")
    add(v, t("t-b"), "forge", "https://git.example.com/acme")
    with pytest.raises(ConflictError):
        add(v, t("t-a"), "forge", "https://git.example.com/other")
    with pytest.raises(ConflictError):
        add(v, t("t-a"), "forge-2", "https://git.example.com/acme")


def test_replace_and_remove_touch_their_tenants_row_only(
    store: CredentialStore, t: Callable[[str], str]
) -> None:
    v = vault(store)
    add(v, t("t-a"), "forge", "https://git.example.com/acme", "old-token-aaaa")
    add(v, t("t-b"), "forge", "https://git.example.com/acme", "b-token-bbbb")
    v.rotate(t("t-a"), "forge", secret="new-token-cccc")
    with pytest.raises(NotFoundError):
        v.rotate(t("t-c"), "forge", secret="x-token-dddd")
    a = v.for_url(t("t-a"), "https://git.example.com/acme/x")
    b = v.for_url(t("t-b"), "https://git.example.com/acme/x")
    assert a is not None and a.secret == "new-token-cccc"
    assert b is not None and b.secret == "b-token-bbbb"
    assert not store.remove(t("t-c"), "forge")
    assert store.remove(t("t-a"), "forge") and store.get(t("t-a"), "forge") is None
    assert store.get(t("t-b"), "forge") is not None


def test_postgres_holds_only_ciphertext(pg_dsn: str) -> None:
    with PgCredentialStore(pg_dsn) as pg:
        add(vault(pg), "t-rest", "forge", "https://git.example.com/rest")
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT * FROM credentials WHERE tenant_id = 't-rest'").fetchall()
    assert rows
    dumped = repr(rows).encode() + b"".join(
        bytes(v) for r in rows for v in r if isinstance(v, (bytes, memoryview))
    )
    assert TOKEN.encode() not in dumped


def test_rows_sealed_with_another_key_are_found_across_tenants(
    store: CredentialStore, t: Callable[[str], str]
) -> None:
    # Rows the other tests left (sealed with keys of their own) would stop the rekey.
    for leftover in store.sealed_with_other_key("", 10_000):
        store.remove(leftover.tenant, leftover.name)
    old_key = new_credentials_key()
    old = CredentialVault(store, CredentialCipher(old_key))
    add(old, t("t-a"), "forge", "https://git.example.com/a")
    add(old, t("t-b"), "forge", "https://git.example.com/b")
    current = CredentialCipher(new_credentials_key(), previous=old_key)
    mine = {t("t-a"), t("t-b")}
    stale = [
        c for c in store.sealed_with_other_key(current.current_key_id, 10_000) if c.tenant in mine
    ]
    assert sorted(c.tenant for c in stale) == sorted(mine)
    CredentialVault(store, current).rekey()
    left = store.sealed_with_other_key(current.current_key_id, 10_000)
    assert not [c for c in left if c.tenant in mine]
    opened = CredentialVault(store, current).for_url(t("t-a"), "https://git.example.com/a/r")
    assert opened is not None and opened.secret == TOKEN
