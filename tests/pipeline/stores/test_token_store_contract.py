"""One contract for the API token store: the fake and PostgreSQL (plus ``revoke``).

The PostgreSQL cases run on a fresh database of the session's real server, migrated with
the shipped migrations; every test works in tenants of its own.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Protocol

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.job_store import InMemoryTokenStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.errors import InvalidInputError
from pipeline.ports import TokenStore
from tests.databases import fresh_pg_database

DEV_TOKEN_CHARS = 32


class RevocableTokenStore(TokenStore, Protocol):
    def revoke(self, token: str) -> bool: ...


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "tokens") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def tokens(request: pytest.FixtureRequest) -> Iterator[RevocableTokenStore]:
    if request.param == "memory":
        yield InMemoryTokenStore()
        return
    with PgTokenStore(request.getfixturevalue("pg_dsn")) as real:
        yield real


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def chosen() -> str:
    return "dev-" + uuid.uuid4().hex[: DEV_TOKEN_CHARS - 4]


def test_a_created_token_authenticates_its_tenant(tokens: RevocableTokenStore, tenant: str) -> None:
    token = tokens.create(tenant, "ci")
    assert token.startswith("qk_")
    assert len(token) == 3 + 43
    assert tokens.authenticate(token) == tenant
    second = tokens.create(tenant)
    assert second != token
    assert tokens.authenticate(second) == tenant
    other = tokens.create(f"{tenant}-b")
    assert tokens.authenticate(other) == f"{tenant}-b"


def test_unknown_or_malformed_tokens_authenticate_no_one(
    tokens: RevocableTokenStore, tenant: str
) -> None:
    token = tokens.create(tenant)
    for wrong in ("", token[:-1], token + "x", token.upper(), "qk_", "\x00", "\udc80", "x" * 5000):
        assert tokens.authenticate(wrong) is None


def test_register_is_idempotent_and_refuses_another_tenants_token(
    tokens: RevocableTokenStore, tenant: str
) -> None:
    token = chosen()
    tokens.register(tenant, token, "development")
    tokens.register(tenant, token, "development")
    tokens.register(tenant, token)
    assert tokens.authenticate(token) == tenant
    with pytest.raises(InvalidInputError, match=f"tenant '{tenant}-b'") as refused:
        tokens.register(f"{tenant}-b", token)
    assert token not in str(refused.value)
    assert tokens.authenticate(token) == tenant


def test_a_revoked_token_no_longer_authenticates_and_stays_revoked(
    tokens: RevocableTokenStore, tenant: str
) -> None:
    token = tokens.create(tenant)
    kept = tokens.create(tenant)
    assert tokens.revoke(token)
    assert tokens.authenticate(token) is None
    assert not tokens.revoke(token)
    assert tokens.authenticate(kept) == tenant
    dev = chosen()
    tokens.register(tenant, dev)
    assert tokens.revoke(dev)
    tokens.register(tenant, dev)  # registering again does not bring it back
    assert tokens.authenticate(dev) is None
    assert not tokens.revoke("never-issued")
    assert not tokens.revoke("")


@pytest.mark.parametrize(
    "bad", ["short", "has space inside it", "tab\tinside-the-token", "ünïcödé-token-value", ""]
)
def test_a_bad_chosen_token_is_refused_without_echoing_it(
    tokens: RevocableTokenStore, tenant: str, bad: str
) -> None:
    with pytest.raises(InvalidInputError, match=f"tenant '{tenant}'") as refused:
        tokens.register(tenant, bad)
    assert not bad or bad not in str(refused.value)


def test_a_bad_tenant_or_label_is_refused_naming_it(tokens: RevocableTokenStore) -> None:
    with pytest.raises(InvalidInputError, match="tenant 'Acme Corp'"):
        tokens.create("Acme Corp")
    with pytest.raises(InvalidInputError, match="tenant ''"):
        tokens.register("", chosen())
    with pytest.raises(InvalidInputError, match="token label"):
        tokens.create("acme", "bad\x00label")


def test_pg_only_digests_are_stored_and_the_tenant_is_created(pg_dsn: str, tenant: str) -> None:
    with PgTokenStore(pg_dsn) as store:
        made = store.create(tenant, "laptop")
        dev = chosen()
        store.register(tenant, dev, "development")
        with pytest.raises(InvalidInputError):
            store.register(f"{tenant}-x", dev)
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT t::text, token_sha256 FROM api_tokens AS t WHERE tenant_id = %s", (tenant,)
        ).fetchall()
        assert conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant,)).fetchone()
        refused = conn.execute("SELECT 1 FROM tenants WHERE id = %s", (f"{tenant}-x",))
        assert refused.fetchone() is None  # the refused register left nothing behind
    assert len(rows) == 2
    for whole_row, _ in rows:
        assert made not in whole_row
        assert dev not in whole_row
        assert made.encode().hex() not in whole_row
    assert {bytes(digest) for _, digest in rows} == {
        hashlib.sha256(made.encode()).digest(),
        hashlib.sha256(dev.encode()).digest(),
    }
