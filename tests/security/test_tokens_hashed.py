"""API tokens are stored as SHA-256 digests only, and checked by their digest.

A token made by ``quarry token create`` (the real console script, on the session stack's
PostgreSQL) appears in no column of ``api_tokens``, in no form: not whole, not any 8
characters of its random part (``qk_`` is the only public part), not hex-encoded. The
stored digest is the token's, and a token with any one character changed is refused.

Constant time: a token is never compared with anything. The store sends PostgreSQL its
digest only and looks the row up by the digest (a unique index). What a timing
difference could reveal is how much of a digest matched, which says nothing about a
token (SHA-256 has no known preimage attack): this is the equivalent of
``hmac.compare_digest`` for tokens, and the test checks that the digest, and nothing
else, is what leaves the process. The API's short cache of answers is keyed by the
digest too, so that the API process holds no clear token.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from config.endpoints import Endpoints
from config.settings import child_environment
from devstack.stack import Stack
from pipeline.adapters.postgres.base import execute
from pipeline.adapters.postgres.connect import connect
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.statements.sql import Query
from tests.security.helpers import Tenant
from tests.stackutil import run_quarry

pytestmark = pytest.mark.timeout(120)
WINDOW = 8


def _forms(value: Any) -> list[str]:
    """A column's value as text, as its bytes decoded, and as hex."""
    if value is None:
        return []
    if isinstance(value, (bytes, memoryview)):
        raw = bytes(value)
        return [raw.decode("latin-1"), raw.hex()]
    return [str(value)]


def _pieces(token: str) -> list[str]:
    """The token whole, every WINDOW characters of its random part, and their hex."""
    secret = token.removeprefix("qk_")
    windows = [secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1)]
    return [token, *windows, *(w.encode().hex() for w in windows)]


def _changed(token: str) -> list[str]:
    """The token with each one of its characters changed in turn."""
    return [token[:i] + chr(ord(c) ^ 1) + token[i + 1 :] for i, c in enumerate(token)]


def test_quarry_token_create_stores_only_the_digest_which_verifies(
    stack: Stack, endpoints: Endpoints, token_store: PgTokenStore, secrets_used: list[str]
) -> None:
    tenant = f"sec-cli-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}
    run = run_quarry("token", "create", "--tenant", tenant, "--label", "security", env=env)
    assert run.returncode == 0, run.stderr
    token = run.stdout.strip().splitlines()[-1]
    secrets_used.append(token)
    assert token.startswith("qk_") and len(token) == 46, "the token is the last line"
    assert token not in run.stderr

    with connect(endpoints.postgres_dsn) as conn:
        cursor = conn.execute("SELECT * FROM api_tokens WHERE tenant_id = %s", (tenant,))
        columns = [c.name for c in cursor.description or ()]
        rows = cursor.fetchall()
        as_text = conn.execute(
            "SELECT t::text FROM api_tokens AS t WHERE tenant_id = %s", (tenant,)
        ).fetchall()
    assert len(rows) == 1 and "token_sha256" in columns
    (row,), (text,) = rows, as_text
    haystacks = [form for value in row for form in _forms(value)] + [text[0]]
    pieces = _pieces(token)
    for haystack in haystacks:
        for piece in pieces:
            assert piece not in haystack, f"part of the token is stored: {piece!r}"
    stored = bytes(row[columns.index("token_sha256")])
    assert stored == hashlib.sha256(token.encode()).digest()
    assert token_store.authenticate(token) == tenant
    changed = _changed(token)
    for other in changed:
        assert hashlib.sha256(other.encode()).digest() != stored
        assert token_store.authenticate(other) is None, other
    print(
        f"\ntoken storage: {len(columns)} columns x {len(pieces)} pieces searched; "
        f"{len(changed)} one-character changes refused"
    )


def test_the_api_accepts_the_token_and_refuses_it_changed(
    new_tenant: Callable[[str], Tenant], endpoints: Endpoints
) -> None:
    tenant = new_tenant("hash")
    with httpx.Client(base_url=endpoints.api_url, timeout=30) as http:
        ok = http.get("/v1/repos", headers={"Authorization": f"Bearer {tenant.token}"})
        assert ok.status_code == 200
        for other in _changed(tenant.token)[::5]:
            refused = http.get("/v1/repos", headers={"Authorization": f"Bearer {other}"})
            assert refused.status_code == 401, other


def test_only_the_digest_leaves_the_store_and_the_api_caches_no_clear_token(
    endpoints: Endpoints, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app

    sent: list[Query] = []

    def spy(conn: Any, query: Query) -> Any:
        sent.append(query)
        return execute(conn, query)

    monkeypatch.setattr("pipeline.adapters.postgres.token_store.execute", spy)
    tenant = f"sec-spy-{uuid.uuid4().hex[:8]}"
    with PgTokenStore(endpoints.postgres_dsn, pool_size=1) as store:
        token = store.create(tenant)
        assert store.authenticate(token) == tenant
        assert store.authenticate(token[:-1] + "x") is None
        assert store.revoke(_changed(token)[5]) is False
    digests = {hashlib.sha256(t.encode()).digest() for t in (token, token[:-1] + "x")}
    digests.add(hashlib.sha256(_changed(token)[5].encode()).digest())
    assert len(sent) >= 4
    for query in sent:
        assert token not in query.text and token[3:11] not in query.text
        for name, value in query.params.items():
            if name == "digest":
                assert value in digests
            else:
                assert token[3:11] not in str(value), (name, query.text)

    settings = stack.settings.model_copy(update={"search_warm_on_start": False})
    app = create_app(settings)
    with TestClient(app) as client:
        response = client.get(
            "/v1/repos", headers={"Authorization": f"Bearer {endpoints.api_token}"}
        )
        assert response.status_code == 200
        cached = app.state.quarry._tokens_seen
        assert cached, "the API keeps recent answers"
        assert all(isinstance(key, bytes) and len(key) == 32 for key in cached)
        assert endpoints.api_token not in repr(cached)
