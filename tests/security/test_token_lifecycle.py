"""A tenant's tokens over the real API (``/v1/tokens``, the session stack): listed without
the token, created with at most the caller's scopes, revoked by id within the tenant
only; a revocation made elsewhere (the operator's) applies within the API's cache
window, one made through the API at once.

What a hostile tenant tries, and what it gets:
* another tenant's token id: 404 on revocation (as an unknown id), never listed;
* a token with more scopes than its own: 403, nothing created;
* a revoked token: 401 at once after ``DELETE /v1/tokens/{id}``, within
  ``TOKEN_CACHE_S`` after ``quarry token revoke``.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from api.state import TOKEN_CACHE_S
from config.endpoints import Endpoints
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.tokens import parse_token_id

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def http(endpoints: Endpoints) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=endpoints.api_url, timeout=60) as client:
        yield client


@pytest.fixture
def issue(token_store: PgTokenStore, secrets_used: list[str]) -> Callable[..., tuple[str, str]]:
    """``issue(tenant, scopes)``: a token made by the operator, and its id."""

    def make(tenant: str, scopes: list[str]) -> tuple[str, str]:
        issued = token_store.issue(tenant, f"lifecycle {'+'.join(scopes)}", scopes)
        secrets_used.append(issued.token)
        return issued.token, issued.record.token_id

    return make


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tenant(role: str) -> str:
    return f"sec-tok-{role}-{uuid.uuid4().hex[:8]}"


def test_a_tenant_lists_creates_and_revokes_its_own_tokens(
    http: httpx.Client, issue: Callable[..., tuple[str, str]], secrets_used: list[str]
) -> None:
    tenant = _tenant("own")
    admin, admin_id = issue(tenant, ["read", "write", "admin"])
    created = http.post(
        "/v1/tokens", json={"label": "search box", "scopes": ["read"]}, headers=_bearer(admin)
    )
    assert created.status_code == 201, created.text
    assert created.headers["Cache-Control"] == "no-store"
    body = created.json()
    secrets_used.append(body["token"])
    new, new_id = body["token"], body["id"]
    assert new.startswith("qk_") and parse_token_id(new_id) == new_id
    assert body["scopes"] == ["read"] and body["tenant"] == tenant and not body["revoked"]

    assert http.get("/v1/repos", headers=_bearer(new)).status_code == 200
    assert http.get("/v1/tokens", headers=_bearer(new)).status_code == 403
    listed = http.get("/v1/tokens", headers=_bearer(admin))
    assert listed.status_code == 200
    tokens = {t["id"]: t for t in listed.json()["tokens"]}
    assert set(tokens) == {admin_id, new_id}
    assert tokens[new_id]["label"] == "search box"
    assert tokens[new_id]["last_used_at"] is not None  # it searched above
    for secret in (admin, new):
        assert secret not in listed.text
        assert hashlib.sha256(secret.encode()).hexdigest() not in listed.text
    assert all("token" not in t for t in tokens.values())

    revoked = http.delete(f"/v1/tokens/{new_id}", headers=_bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    # Revoked through this API process: refused at once, not after its cache window.
    assert http.get("/v1/repos", headers=_bearer(new)).status_code == 401
    again = http.delete(f"/v1/tokens/{new_id}", headers=_bearer(admin))
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    # A token may revoke itself.
    assert http.delete(f"/v1/tokens/{admin_id}", headers=_bearer(admin)).status_code == 200
    assert http.get("/v1/tokens", headers=_bearer(admin)).status_code == 401


def test_a_tenant_can_neither_see_nor_revoke_another_tenants_token(
    http: httpx.Client, issue: Callable[..., tuple[str, str]]
) -> None:
    mine, _ = issue(_tenant("a"), ["read", "write", "admin"])
    theirs, theirs_id = issue(_tenant("b"), ["read"])
    for token_id in (theirs_id, "tk_0000000000000000", "not-an-id", "tk_%27%20OR%201=1"):
        refused = http.delete(f"/v1/tokens/{token_id}", headers=_bearer(mine))
        assert refused.status_code == 404, (token_id, refused.text)
        assert set(refused.json()) == {"detail"}
    assert theirs_id not in http.get("/v1/tokens", headers=_bearer(mine)).text
    assert http.get("/v1/repos", headers=_bearer(theirs)).status_code == 200


@pytest.mark.parametrize(
    ("held", "asked", "beyond"),
    [
        (["read", "admin"], ["write"], "write"),
        (["admin"], ["read", "admin"], "read"),
        (["write", "admin"], ["admin", "read", "write"], "read"),
    ],
)
def test_a_token_cannot_grant_a_scope_it_does_not_hold(
    http: httpx.Client,
    issue: Callable[..., tuple[str, str]],
    held: list[str],
    asked: list[str],
    beyond: str,
) -> None:
    tenant = _tenant("esc")
    token, token_id = issue(tenant, held)
    refused = http.post("/v1/tokens", json={"scopes": asked}, headers=_bearer(token))
    assert refused.status_code == 403, refused.text
    assert refused.json() == {
        "detail": f"this token cannot grant the {beyond!r} scope: it does not hold it"
    }
    listed = http.get("/v1/tokens", headers=_bearer(token)).json()["tokens"]
    assert [t["id"] for t in listed] == [token_id]  # nothing was made
    allowed = http.post("/v1/tokens", json={"scopes": held}, headers=_bearer(token))
    assert allowed.status_code == 201


def test_unknown_scopes_and_fields_are_refused(
    http: httpx.Client, issue: Callable[..., tuple[str, str]]
) -> None:
    token, _ = issue(_tenant("bad"), ["read", "write", "admin"])
    for body in ({"scopes": ["root"]}, {"scopes": []}, {"scopes": ["read"], "tenant": "other"}):
        refused = http.post("/v1/tokens", json=body, headers=_bearer(token))
        assert refused.status_code == 422, (body, refused.text)


def test_an_operator_revocation_applies_within_the_cache_window(
    http: httpx.Client, issue: Callable[..., tuple[str, str]], token_store: PgTokenStore
) -> None:
    token, token_id = issue(_tenant("cache"), ["read"])
    assert http.get("/v1/repos", headers=_bearer(token)).status_code == 200  # now cached
    assert token_store.revoke_id(token_id) is not None
    revoked_at = time.monotonic()
    while http.get("/v1/repos", headers=_bearer(token)).status_code == 200:
        assert time.monotonic() - revoked_at < TOKEN_CACHE_S + 2, "still accepted"
        time.sleep(0.25)
    print(f"\nrefused {time.monotonic() - revoked_at:.1f} s after the operator's revocation")


def test_the_openapi_document_shows_token_listing_and_revocation(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert paths["/v1/tokens"]["get"]["x-quarry-scope"] == "admin"
    assert paths["/v1/tokens"]["post"]["x-quarry-scope"] == "admin"
    revoke = paths["/v1/tokens/{token_id}"]["delete"]
    assert revoke["x-quarry-scope"] == "admin" and "403" in revoke["responses"]
    assert paths["/v1/jobs"]["post"]["description"].startswith("Needs the `write` scope.")
    assert paths["/v1/search"]["get"]["x-quarry-scope"] == "read"
