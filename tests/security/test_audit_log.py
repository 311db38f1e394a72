"""The API's audit log, read from the session stack's file: one JSON line for each call a
token made with the write or admin scope and for each refused call, with the fields the
README lists, never a token; a path or header made to look like a line stays inside its
field. And an audit file that cannot be written costs no request.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config.endpoints import Endpoints
from config.settings import QuarrySettings, audit_log_path, load_settings
from pipeline.adapters.fakes.job_store import InMemoryTokenStore
from pipeline.adapters.postgres.token_store import PgTokenStore

pytestmark = pytest.mark.timeout(120)
FIELDS = {
    "time",
    "event",
    "method",
    "path",
    "status",
    "tenant",
    "token_id",
    "scope",
    "remote",
    "request_id",
}


def _lines(path: Path, prefix: str, count: int) -> list[dict[str, Any]]:
    """The audit lines of request ids starting with ``prefix``, once there are ``count``
    (the file is written by a background thread: a moment after the answer)."""
    deadline = time.monotonic() + 10
    while True:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        entries = [json.loads(line) for line in text.splitlines()]  # every line is JSON
        found = [e for e in entries if str(e.get("request_id", "")).startswith(prefix)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_writes_and_refusals_are_audited_with_no_token_and_no_forged_line(
    stack_settings: QuarrySettings,
    endpoints: Endpoints,
    token_store: PgTokenStore,
    secrets_used: list[str],
    tmp_path: Path,
) -> None:
    tenant = f"sec-audit-{uuid.uuid4().hex[:8]}"
    writer = token_store.issue(tenant, "audit writer", ["read", "write"])
    reader = token_store.issue(tenant, "audit reader", ["read"])
    secrets_used += [writer.token, reader.token]
    run = f"audit-{uuid.uuid4().hex[:12]}"
    forged = '\n{"event":"write","tenant":"victim"}\r\n"'
    with httpx.Client(base_url=endpoints.api_url, timeout=60) as http:

        def call(n: int, method: str, url: str, token: str | None, **extra: Any) -> int:
            headers = {"X-Request-Id": f"{run}-{n}", "User-Agent": f"agent-{run}"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            return http.request(method, url, headers=headers, **extra).status_code

        assert call(1, "GET", "/v1/repos", writer.token) == 200  # a read: not audited
        source = {"source": str(tmp_path), "repo": "audit/app"}
        assert (
            call(2, "POST", "/v1/jobs", writer.token, params={"dry_run": "true"}, json=source) < 300
        )
        assert call(3, "POST", "/v1/jobs", reader.token, json=source) == 403
        assert call(4, "GET", "/v1/repos", "qk_not-a-token-xxxxxxxxxxxxxxxxx") == 401
        assert (
            call(
                5,
                "GET",
                "/v1/jobs/x" + quote(forged, safe=""),
                None,
                params={"token": writer.token},
            )
            == 401
        )
        # A request id that is not plain is replaced, not written as sent.
        odd = http.get("/v1/repos", headers={"X-Request-Id": f'{run}-6"}}'})
        assert odd.status_code == 401 and odd.headers["X-Request-Id"] != f'{run}-6"}}'

    path = audit_log_path(stack_settings)
    lines = _lines(path, run, 4)
    assert [(e["request_id"], e["event"], e["status"]) for e in lines] == [
        (f"{run}-2", "write", 200),
        (f"{run}-3", "refused", 403),
        (f"{run}-4", "refused", 401),
        (f"{run}-5", "refused", 401),
    ], lines
    write, scope, unknown, injected = lines
    assert set(write) == FIELDS
    assert write["tenant"] == tenant and write["token_id"] == writer.record.token_id
    assert write["scope"] == "write" and write["method"] == "POST" and write["path"] == "/v1/jobs"
    assert write["remote"] == "127.0.0.1"
    assert set(scope) == FIELDS | {"reason"}
    assert scope["tenant"] == tenant and scope["token_id"] == reader.record.token_id
    assert scope["reason"].startswith("this token lacks the 'write' scope")
    assert unknown["reason"] == "invalid or revoked token" and unknown["tenant"] is None
    assert injected["reason"] == "missing bearer token"
    assert injected["path"] == "/v1/jobs/x" + forged  # one field, not a line of its own
    text = path.read_text(encoding="utf-8")
    assert all(json.loads(line).get("tenant") != "victim" for line in text.splitlines())
    for secret in (writer.token, reader.token, *secrets_used):
        assert secret not in text
    assert f"agent-{run}" not in text  # headers are not written


def test_an_audit_file_that_cannot_be_written_costs_no_request(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    settings = load_settings(
        env={
            "QUARRY_DATA_DIR": str(tmp_path / "data"),
            "QUARRY_AUDIT_LOG_FILE": str(blocker / "audit.jsonl"),
            "QUARRY_SEARCH_WARM_ON_START": "false",
        }
    )
    app = create_app(settings)
    store = InMemoryTokenStore()
    app.state.quarry._built["tokens"] = store
    admin = {"Authorization": f"Bearer {store.create('acme')}"}
    with TestClient(app) as client:
        for _ in range(3):
            made = client.post("/v1/tokens", json={"scopes": ["read"]}, headers=admin)
            assert made.status_code == 201
            assert (
                client.get("/v1/tokens", headers={"Authorization": "Bearer x"}).status_code == 401
            )
    assert len(store.list_tokens("acme")) == 4
