"""Tenant quotas at the API, on the session stack's PostgreSQL (an idle Redis database:
what it enqueues stays queued): every authenticated answer carries what is left of each
quota; a job past one is refused with 429 or 403 naming it, and is not kept; a tenant
cannot raise its own quota, nor see another's; the OpenAPI document shows the headers.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from config.endpoints import Endpoints
from devstack.stack import Stack
from pipeline.adapters.postgres.quota_store import PgQuotaStore
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.quotas import Quota, QuotaLimits, default_limits
from tests.api.idle import idle_api as idle

IDLE_DB = 12  # no worker of the session stack reads this database
HEADERS = [q.header for q in Quota]


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[TestClient]:
    with idle(stack, db=IDLE_DB, queue_bound_ingest=1000) as client:
        yield client


@pytest.fixture(scope="module")
def quotas(endpoints: Endpoints) -> Iterator[PgQuotaStore]:
    with PgQuotaStore(endpoints.postgres_dsn) as store:
        yield store


@pytest.fixture(scope="module")
def tokens(endpoints: Endpoints) -> Iterator[PgTokenStore]:
    with PgTokenStore(endpoints.postgres_dsn) as store:
        yield store


@pytest.fixture
def tenant(tokens: PgTokenStore) -> tuple[str, dict[str, str]]:
    """A fresh tenant and its admin token's header (every scope)."""
    name = f"quota-{uuid.uuid4().hex[:8]}"
    return name, {"Authorization": f"Bearer {tokens.create(name, 'quota tests')}"}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "a.py").write_text("def a():\n    return 1\n")
    return tmp_path


def post_job(api: TestClient, auth: dict[str, str], source: Path, **extra: str) -> httpx.Response:
    body = {"source": str(source), "repo": f"r-{uuid.uuid4().hex[:8]}", **extra}
    return api.post("/v1/jobs", json=body, headers=auth)


def test_every_authenticated_answer_carries_the_remaining_quotas(
    api: TestClient, tenant: tuple[str, dict[str, str]], stack: Stack
) -> None:
    _, auth = tenant
    defaults = default_limits(stack.settings)
    answer = api.get("/v1/jobs", headers=auth)
    assert answer.status_code == 200
    assert answer.headers["X-Quota-Remaining-Concurrent-Jobs"] == str(defaults.concurrent_jobs)
    assert answer.headers["X-Quota-Remaining-Files-Per-Day"] == str(defaults.files_per_day)
    assert answer.headers["X-Quota-Remaining-Stored-Chunks"] == str(defaults.stored_chunks)
    refused = api.get("/v1/jobs", headers={"Authorization": "Bearer qk_not-a-token"})
    assert refused.status_code == 401
    assert not [h for h in HEADERS if h in refused.headers]  # no tenant, no quotas


def test_a_job_past_concurrent_jobs_is_429_naming_it_and_not_kept(
    api: TestClient,
    tenant: tuple[str, dict[str, str]],
    quotas: PgQuotaStore,
    source: Path,
) -> None:
    name, auth = tenant
    quotas.set_limits(name, {"concurrent_jobs": 1})
    first = post_job(api, auth, source, idempotency_key="first")
    assert first.status_code == 202, first.text
    assert first.headers["X-Quota-Remaining-Concurrent-Jobs"] == "0"
    refused = api.post("/v1/jobs", json={"source": str(source), "repo": "second"}, headers=auth)
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["quota"] == "concurrent_jobs" and body["limit"] == 1 and body["used"] == 1
    assert "concurrent_jobs" in body["detail"] and "limit 1" in body["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-Quota-Remaining-Concurrent-Jobs"] == "0"
    assert api.get("/v1/jobs", params={"repo": "second"}, headers=auth).json()["jobs"] == []
    # The same request again (its idempotency key) finds its job: not a new one, not refused.
    again = post_job(api, auth, source, idempotency_key="first")
    assert again.status_code == 200


def test_a_spent_files_per_day_is_429_until_midnight_utc(
    api: TestClient, tenant: tuple[str, dict[str, str]], quotas: PgQuotaStore, source: Path
) -> None:
    name, auth = tenant
    quotas.set_limits(name, {"files_per_day": 10})
    quotas.charge_files(name, str(uuid.uuid4()), 10, default_limits_of(api))
    refused = post_job(api, auth, source)
    assert refused.status_code == 429
    body = refused.json()
    assert body["quota"] == "files_per_day" and body["limit"] == 10 and body["used"] == 10
    assert 1 <= int(refused.headers["Retry-After"]) <= 86_400
    assert refused.headers["X-Quota-Remaining-Files-Per-Day"] == "0"


def test_a_full_stored_chunks_is_403_on_both_job_routes(
    api: TestClient, tenant: tuple[str, dict[str, str]], quotas: PgQuotaStore, source: Path
) -> None:
    name, auth = tenant
    quotas.set_limits(name, {"stored_chunks": 0})
    refused = post_job(api, auth, source)
    assert refused.status_code == 403
    assert refused.json()["quota"] == "stored_chunks"
    assert "Retry-After" not in refused.headers
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(source / "a.py", arcname="a.py")
    upload = api.post(
        "/v1/jobs/archive",
        params={"repo": "up"},
        content=archive.getvalue(),
        headers={**auth, "Content-Type": "application/gzip"},
    )
    assert upload.status_code == 403, upload.text
    assert upload.json()["quota"] == "stored_chunks"


def test_a_tenant_cannot_raise_its_own_quota_nor_read_anothers(
    api: TestClient,
    tenant: tuple[str, dict[str, str]],
    tokens: PgTokenStore,
    quotas: PgQuotaStore,
    source: Path,
) -> None:
    """No route writes a quota, whatever the token's scopes; a tenant's headers are its
    own figures only, and headers a client sends change nothing."""
    name, auth = tenant
    quotas.set_limits(name, {"concurrent_jobs": 0})
    for method in ("PUT", "POST", "PATCH"):
        for path in ("/v1/quotas", f"/v1/tenants/{name}/quotas", "/v1/quota"):
            answer = api.request(method, path, json={"concurrent_jobs": 100}, headers=auth)
            assert answer.status_code in (404, 405), (method, path, answer.status_code)
    paths = api.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if "quota" in p.lower() or "tenant" in p.lower()]
    forged = {**auth, "X-Quota-Remaining-Concurrent-Jobs": "100"}
    assert post_job(api, auth | forged, source).status_code == 429
    assert quotas.overrides(name)["concurrent_jobs"] == 0
    other = f"quota-{uuid.uuid4().hex[:8]}"
    other_auth = {"Authorization": f"Bearer {tokens.create(other, 'quota tests')}"}
    seen = api.get("/v1/jobs", headers=other_auth).headers
    assert seen["X-Quota-Remaining-Concurrent-Jobs"] != "0"  # not the first tenant's


def test_the_openapi_document_shows_the_quota_headers_and_refusals(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    listed = schema["paths"]["/v1/jobs"]["get"]["responses"]["200"]["headers"]
    assert set(HEADERS) <= set(listed)
    created = schema["paths"]["/v1/jobs"]["post"]["responses"]
    assert set(HEADERS) <= set(created["202"]["headers"])
    assert "files_per_day" in created["429"]["description"]
    assert "stored_chunks" in created["403"]["description"]
    refusal = schema["components"]["schemas"]["QuotaRefusal"]["properties"]["quota"]
    assert set(refusal["enum"]) == {q.value for q in Quota}
    assert "X-Quota-Remaining-Stored-Chunks" in str(schema["paths"]["/v1/search"])


def default_limits_of(api: TestClient) -> QuotaLimits:
    return default_limits(api.app.state.quarry.settings)  # type: ignore[attr-defined]
