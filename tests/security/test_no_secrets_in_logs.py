"""No secret appears in any log line: tokens, the webhook secret, the stack's generated
passwords, a database or Redis password in a URL, or an Authorization header.

The session stack does real work with secrets (a job with a callback, signed with the
webhook secret, by a tenant's token; refused requests with valid, unknown, revoked and
malformed tokens; a callback URL with credentials), then every log file under the
stack's data folder is read. An API on stores whose URLs carry passwords (which it
cannot reach) logs its failures into ``caplog``, read through both of the project's
formatters (text and JSON, tracebacks included), and its answers are read too.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from config.endpoints import Endpoints, read_stack_secrets
from config.logging import JsonFormatter, TextFormatter
from config.redaction import redact_url
from config.settings import QuarrySettings
from devstack.stack import Stack
from pipeline.adapters.postgres.token_store import PgTokenStore
from tests.security.helpers import Receiver, Tenant, enqueue, wait
from tests.stackutil import free_ports

pytestmark = pytest.mark.timeout(180)
BEARER = re.compile(r"bearer\s+[A-Za-z0-9_\-.~+/]{8,}", re.IGNORECASE)
AUTH_HEADER = re.compile(r"authorization['\"]?\s*[:=]", re.IGNORECASE)


def _hits(text: str, secrets: dict[str, str]) -> list[str]:
    found = [f"{name}" for name, value in secrets.items() if value and value in text]
    found += [f"header: {m.group(0)[:20]}..." for m in BEARER.finditer(text)]
    found += [f"header: {m.group(0)}" for m in AUTH_HEADER.finditer(text)]
    return found


def _log_files(data_dir: Path) -> list[Path]:
    """Every log file the stack wrote: its logs folder, and any *.log or log folder of
    a service under the data folder."""
    files = set((data_dir / "logs").rglob("*"))
    files |= set(data_dir.rglob("*.log")) | set(data_dir.rglob("*.log.*"))
    for folder in data_dir.rglob("log"):
        if folder.is_dir():
            files |= set(folder.rglob("*"))
    return sorted(p for p in files if p.is_file())


def _stack_work(
    endpoints: Endpoints,
    api: httpx.Client,
    tenant: Tenant,
    repo: Path,
    receiver: Receiver,
    revoked: str,
) -> str:
    """Work that handles every kind of secret; the id of the job with the callback."""
    url = f"http://127.0.0.1:{receiver.port}/hook?id={uuid.uuid4().hex[:6]}"
    receiver.answers = [500]  # a failed delivery is logged, then retried
    job_id = enqueue(api, source=str(repo), repo=f"logs-{uuid.uuid4().hex[:8]}", callback_url=url)
    assert wait(api, job_id)["status"] == "done"
    deadline = time.monotonic() + 30
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.received) == 2, "the webhook was not delivered again after a 500"
    # A job that fails, and one refused for the credentials in its callback URL.
    failed = enqueue(
        api, source=f"file://{repo}", ref="no-such-branch", repo=f"logs-{uuid.uuid4().hex[:8]}"
    )
    assert wait(api, failed)["status"] == "failed"
    missing = api.post("/v1/jobs", json={"source": str(repo / "missing")})
    assert missing.status_code == 422 and "does not exist" in missing.text
    credentials = api.post(
        "/v1/jobs",
        json={"source": str(repo), "callback_url": f"http://user:{tenant.token}@127.0.0.1/"},
    )
    assert credentials.status_code == 422 and tenant.token not in credentials.text
    unknown = "qk_" + uuid.uuid4().hex * 2
    with httpx.Client(base_url=endpoints.api_url, timeout=30) as http:
        for header in (
            f"Bearer {unknown}",
            f"Bearer {revoked}",
            f"Basic {tenant.token}",
            tenant.token,
            f"Bearer {tenant.token} extra",
        ):
            assert http.get("/v1/jobs", headers={"Authorization": header}).status_code == 401
        assert http.get("/v1/repos", params={"token": tenant.token}).status_code == 401
        # A valid token on another tenant's job: 404, logged or not.
        other = http.get(
            f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {endpoints.api_token}"}
        )
        assert other.status_code == 404
    return job_id


def test_no_secret_in_any_log_file_of_the_stack(
    stack: Stack,
    endpoints: Endpoints,
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    tiny_repo: Callable[[str], Path],
    receiver: Receiver,
    token_store: PgTokenStore,
    secrets_used: list[str],
) -> None:
    tenant = new_tenant("logs")
    revoked = token_store.create(tenant.name, "revoked")
    token_store.revoke(revoked)
    secrets_used.append(revoked)
    job_id = _stack_work(
        endpoints, client_for(tenant), tenant, tiny_repo("logged"), receiver, revoked
    )
    stack_secrets = read_stack_secrets(stack.settings)
    assert stack_secrets is not None and stack_secrets.webhook_secret
    assert stack_secrets.credentials_key
    secrets = {f"token {i}": token for i, token in enumerate(secrets_used)}
    secrets |= {
        "the development token": stack_secrets.api_token,
        "the webhook secret": stack_secrets.webhook_secret,
        "the credentials key": stack_secrets.credentials_key,
        "the graph password": stack_secrets.graph_password,
        "the Flower password": stack_secrets.flower_password,
    }
    time.sleep(1.0)  # the workers' last lines reach their files
    files = _log_files(stack.settings.data_dir)
    assert any(f.name.startswith("worker-") for f in files) and any(
        f.name == "api.log" for f in files
    )
    lines = 0
    found: dict[str, list[str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        lines += text.count("\n")
        for number, line in enumerate(text.splitlines(), 1):
            for hit in _hits(line, secrets):
                found.setdefault(
                    f"{path.relative_to(stack.settings.data_dir)}:{number}", []
                ).append(hit)
    assert found == {}, found
    # The scan read what the workers wrote of this very job, its failed delivery too.
    texts = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in files}
    retried = [n for n, t in texts.items() if f"of job {job_id}" in t and "retry in" in t]
    assert any(name.startswith("worker-") for name in retried), sorted(texts)
    print(f"\nlogs: {len(files)} files, {lines} lines, {len(secrets)} secrets + 2 header patterns")


REQUESTS = (
    ("GET", "/readyz"),
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/repos"),
    ("GET", "/v1/search?q=ledger&mode=lexical&expand=callers"),
    ("GET", "/v1/graph/symbol?repo=r&name=x"),
    ("GET", "/metrics"),
)


def _exercise(settings: QuarrySettings, token: str, source: Path) -> list[str]:
    """The answers of an in-process API on ``settings`` to REQUESTS."""
    from api.app import create_app

    answers = []
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for method, path in REQUESTS:
            body = {"source": str(source), "repo": "r"} if method == "POST" else None
            answers.append(client.request(method, path, json=body).text)
    return answers


def test_store_passwords_in_urls_never_reach_a_log_line_or_an_answer(
    stack_settings: QuarrySettings,
    endpoints: Endpoints,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    redis_port, pg_port, bolt_port = free_ports(3)
    pw = {name: f"{name}-pw-{uuid.uuid4().hex}" for name in ("redis", "pg", "pg-query", "graph")}
    dead_redis = f"redis://:{pw['redis']}@127.0.0.1:{redis_port}/0"
    base = {"neo4j_uri": f"bolt://127.0.0.1:{bolt_port}", "neo4j_password": SecretStr(pw["graph"]),
            "search_warm_on_start": False}  # fmt: skip
    everything_down = stack_settings.model_copy(
        update={
            **base,
            "redis_url": dead_redis,
            "postgres_dsn": f"postgresql://quarry:{pw['pg']}@127.0.0.1:{pg_port}/quarry"
            f"?password={pw['pg-query']}&connect_timeout=1",
        }
    )
    # PostgreSQL up (its trust authentication ignores the password), Redis and graph down:
    # the token is accepted, so that the routes reach the stores that fail.
    postgres_up = stack_settings.model_copy(
        update={
            **base,
            "redis_url": dead_redis,
            "postgres_dsn": f"{endpoints.postgres_dsn}?password={pw['pg-query']}",
        }
    )
    caplog.set_level(logging.DEBUG)
    answers = _exercise(everything_down, endpoints.api_token, tmp_path)
    answers += _exercise(postgres_up, endpoints.api_token, tmp_path)
    records = caplog.records
    assert any(r.levelno >= logging.WARNING for r in records), "the failures were logged"
    assert any("redis" in a.lower() for a in answers), "a Redis failure was answered"
    formatted = [f.format(r) for r in records for f in (TextFormatter(), JsonFormatter())]
    for text in [*formatted, *answers]:
        leaked = [name for name, value in pw.items() if value in text]
        assert not leaked, (leaked, text[:500])
        assert not _hits(text, {"the development token": endpoints.api_token}), text[:500]
    for url in (dead_redis, everything_down.postgres_dsn or "", postgres_up.postgres_dsn or ""):
        assert not [name for name, value in pw.items() if value in redact_url(url)], url
    print(
        f"\nstore passwords: {len(records)} log records x 2 formats and "
        f"{len(answers)} answers, {len(pw)} passwords: none found"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6390/0", "redis://:***@127.0.0.1:6390/0"),
        ("rediss://user:s3cret@[::1]:6390/1", "rediss://user:***@[::1]:6390/1"),
        ("redis://127.0.0.1:6390/0?password=s3cret", "redis://127.0.0.1:6390/0?password=***"),
        ("unix:///run/redis.sock?db=2&password=s3cret", "unix:///run/redis.sock?db=2&password=***"),
        (
            "postgresql://quarry:s3cret@db:5432/quarry?sslmode=require",
            "postgresql://quarry:***@db:5432/quarry?sslmode=require",
        ),
        (
            "postgresql://quarry@db/quarry?PassWord=s3cret&sslpassword=s3cret#x",
            "postgresql://quarry@db/quarry?PassWord=***&sslpassword=***#x",
        ),
        ("bolt://graph:7687", "bolt://graph:7687"),
        (
            "postgresql://quarry@db/quarry?sslmode=require",
            "postgresql://quarry@db/quarry?sslmode=require",
        ),
    ],
)
def test_redaction_hides_passwords_in_the_userinfo_and_the_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)
