"""One contract for the API token store: the fake and PostgreSQL (scopes, listing and
revocation by public id included).

The PostgreSQL cases run on a fresh database of the session's real server, migrated with
the shipped migrations; every test works in tenants of its own.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import discover, run
from pipeline.adapters.fakes.job_store import InMemoryTokenStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.errors import InvalidInputError
from pipeline.ports import TokenStore
from pipeline.tokens import TokenGrant, parse_token_id
from tests.databases import fresh_pg_database

DEV_TOKEN_CHARS = 32
SCOPES_MIGRATION = 12  # migrations/sql/0012_token_scopes.sql


RevocableTokenStore = TokenStore


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


def test_scopes_are_kept_in_order_and_every_scope_is_the_default(
    tokens: RevocableTokenStore, tenant: str
) -> None:
    everything = tokens.identify(tokens.create(tenant))
    assert everything is not None and everything.scopes == {"read", "write", "admin"}
    issued = tokens.issue(tenant, "search box", ["read", "read"])
    grant = tokens.identify(issued.token)
    assert grant == TokenGrant(tenant, issued.record.token_id, frozenset({"read"}))
    assert issued.record.scopes == ("read",) and issued.record.label == "search box"
    both = tokens.issue(tenant, scopes=["admin", "write"]).record
    assert both.scopes == ("write", "admin")
    dev = chosen()
    tokens.register(tenant, dev)
    registered = tokens.identify(dev)
    assert registered is not None and registered.scopes == {"read", "write", "admin"}
    assert tokens.identify("qk_never-issued-xxxxxxxxxxxxxxxx") is None


@pytest.mark.parametrize(("scopes", "named"), [([], "at least one"), (["read", "root"], "'root'")])
def test_an_unknown_or_missing_scope_is_refused_naming_it(
    tokens: RevocableTokenStore, tenant: str, scopes: list[str], named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        tokens.create(tenant, scopes=scopes)
    assert tokens.list_tokens(tenant) == []


def test_a_tenants_tokens_are_listed_newest_first_without_the_token(
    tokens: RevocableTokenStore, tenant: str
) -> None:
    first = tokens.issue(tenant, "first", ["read"])
    second = tokens.issue(tenant, "second")
    tokens.create(f"{tenant}-b", "another tenant's")
    assert tokens.revoke(first.token)
    listed = tokens.list_tokens(tenant)
    assert [t.token_id for t in listed] == [second.record.token_id, first.record.token_id]
    assert [t.label for t in listed] == ["second", "first"]
    assert listed[0].revoked_at is None and listed[1].revoked_at is not None
    assert listed[0].created_at == pytest.approx(time.time(), abs=60)
    assert all(t.tenant == tenant for t in listed)
    for record in listed:
        shown = repr(record) + repr(record.public())
        assert first.token not in shown and second.token not in shown
        assert parse_token_id(record.token_id) == record.token_id
    everyone = {t.token_id for t in tokens.list_tokens()}
    assert {t.token_id for t in listed} < everyone
    assert tokens.list_tokens(f"{tenant}-none") == []
    with pytest.raises(InvalidInputError, match="tenant 'Bad Tenant'"):
        tokens.list_tokens("Bad Tenant")


def test_a_token_is_revoked_by_its_id_within_its_tenant_only(
    tokens: RevocableTokenStore, tenant: str
) -> None:
    mine = tokens.issue(tenant, "mine")
    theirs = tokens.issue(f"{tenant}-b", "theirs")
    assert tokens.revoke_id(theirs.record.token_id, tenant) is None
    assert tokens.authenticate(theirs.token) == f"{tenant}-b"
    revoked = tokens.revoke_id(mine.record.token_id, tenant)
    assert revoked is not None and revoked.revoked_at is not None
    assert revoked.token_id == mine.record.token_id and revoked.label == "mine"
    assert tokens.identify(mine.token) is None
    again = tokens.revoke_id(mine.record.token_id, tenant)
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert not tokens.revoke(mine.token)
    # The operator's revocation names no tenant.
    operator = tokens.revoke_id(theirs.record.token_id)
    assert operator is not None and operator.tenant == f"{tenant}-b"
    assert tokens.authenticate(theirs.token) is None
    for unknown in ("tk_0000000000000000", "tk_", "", "x" * 600, "tk_' OR 1=1 --"):
        assert tokens.revoke_id(unknown) is None


def test_last_use_is_noted_at_most_once_a_minute(tokens: RevocableTokenStore, tenant: str) -> None:
    issued = tokens.issue(tenant)
    assert issued.record.last_used_at is None
    assert tokens.identify(issued.token) is not None
    (first,) = tokens.list_tokens(tenant)
    assert first.last_used_at is not None
    assert first.last_used_at == pytest.approx(time.time(), abs=60)
    assert tokens.authenticate(issued.token) == tenant
    (second,) = tokens.list_tokens(tenant)
    assert second.last_used_at == first.last_used_at  # within the minute: not written


def test_pg_last_use_older_than_a_minute_is_moved_on(pg_dsn: str, tenant: str) -> None:
    with PgTokenStore(pg_dsn) as store:
        issued = store.issue(tenant)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE api_tokens SET last_used_at = now() - interval '61 seconds'"
                " WHERE token_id = %s",
                (issued.record.token_id,),
            )
        (before,) = store.list_tokens(tenant)
        assert store.identify(issued.token) is not None
        (after,) = store.list_tokens(tenant)
    assert before.last_used_at is not None and after.last_used_at is not None
    assert after.last_used_at - before.last_used_at == pytest.approx(61, abs=5)


def test_memory_last_use_older_than_a_minute_is_moved_on(tenant: str) -> None:
    now = [1000.0]
    store = InMemoryTokenStore(clock=lambda: now[0])
    token = store.create(tenant)
    store.identify(token)
    now[0] += 60
    store.identify(token)
    assert store.list_tokens(tenant)[0].last_used_at == 1000.0
    now[0] += 1
    store.identify(token)
    assert store.list_tokens(tenant)[0].last_used_at == 1061.0


def test_tokens_made_before_scopes_keep_every_scope_and_get_an_id(
    endpoints: Endpoints, tenant: str
) -> None:
    before = [m for m in discover("sql") if m.version < SCOPES_MIGRATION]
    with fresh_pg_database(endpoints, "tokens_upgrade") as dsn:
        run(PgMigrationTarget(dsn), before)
        token = chosen()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO tenants (id) VALUES (%s)", (tenant,))
            conn.execute(
                "INSERT INTO api_tokens (tenant_id, token_sha256, label) VALUES (%s, %s, 'old')",
                (tenant, hashlib.sha256(token.encode()).digest()),
            )
        run(PgMigrationTarget(dsn))
        with PgTokenStore(dsn) as store:
            grant = store.identify(token)
            (record,) = store.list_tokens(tenant)
    assert grant is not None and grant.scopes == {"read", "write", "admin"}
    assert record.label == "old" and parse_token_id(record.token_id) == grant.token_id
