"""Push webhooks over the real app, PostgreSQL and Redis: a tenant registers a hook,
GitHub- and GitLab-shaped deliveries enqueue the ref at its commit from the registered
clone URL, and every bad, unsigned, foreign or oversized delivery gets a 4xx, enqueues
nothing and is written to the audit log.

The API runs in-process with its Redis pointed at a database no worker consumes
(tests/api/idle.py): what it enqueues stays queued, so the jobs can be counted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api import routes_push_hooks
from config.endpoints import resolve_endpoints
from devstack.stack import Stack
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.errors import ConflictError
from pipeline.models import RepoRef
from pipeline.push_hooks.hooks import github_signature
from tests.api.idle import idle_api as idle

IDLE_DB = 12  # no worker of the session stack reads this database
FULL_DB = 11
SHA = "1f2e3d4c5b6a79880716253443526170f1e2d3c4"
SHA2 = "2f2e3d4c5b6a79880716253443526170f1e2d3c4"
ZERO = "0" * 40
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def audit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit") / "audit.jsonl"


@pytest.fixture(scope="module")
def api(stack: Stack, audit_file: Path) -> Iterator[TestClient]:
    with idle(stack, db=IDLE_DB, queue_bound_ingest=1000, audit_log_file=audit_file) as client:
        yield client


@pytest.fixture(scope="module")
def platform_client(api: TestClient) -> TestClient:
    """What GitHub and GitLab are to Quarry: a client with no token."""
    return TestClient(api.app)


@pytest.fixture(scope="module")
def other_tenant_token(stack: Stack) -> Iterator[str]:
    with PgTokenStore(resolve_endpoints(stack.settings).postgres_dsn, pool_size=1) as tokens:
        yield tokens.create(f"hook-other-{uuid.uuid4().hex[:8]}", "push hook tests")


def register(api: TestClient, platform: str, project: str, **extra: Any) -> dict[str, Any]:
    host = "github.com" if platform == "github" else "gitlab.example.com"
    body = {"platform": platform, "clone_url": f"https://{host}/{project}.git", **extra}
    answer = api.post("/v1/push-hooks", json=body)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


@pytest.fixture
def project() -> str:
    return f"acme-{uuid.uuid4().hex[:8]}/widgets"


def github_payload(project: str, ref: str = "refs/heads/feature/x", after: str = SHA) -> bytes:
    deleted = after == ZERO
    return json.dumps(
        {
            "ref": ref,
            "before": "a" * 40,
            "after": after,
            "deleted": deleted,
            "head_commit": None if deleted else {"id": after},
            "repository": {
                "full_name": project,
                "clone_url": f"https://github.com/{project}.git",
                "ssh_url": f"git@github.com:{project}.git",
            },
        }
    ).encode()


def gitlab_payload(project: str, ref: str = "refs/heads/main", after: str = SHA) -> bytes:
    return json.dumps(
        {
            "object_kind": "tag_push" if ref.startswith("refs/tags/") else "push",
            "ref": ref,
            "before": "a" * 40,
            "after": after,
            "checkout_sha": None if after == ZERO else after,
            "project": {
                "path_with_namespace": project,
                "git_http_url": f"https://gitlab.example.com/{project}.git",
                "git_ssh_url": f"git@gitlab.example.com:{project}.git",
            },
        }
    ).encode()


def github_headers(secret: str | None, body: bytes, event: str = "push") -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = github_signature(secret, body)
    return headers


def path_of(hook: dict[str, Any]) -> str:
    return httpx.URL(hook["url"]).path


def jobs_of(api: TestClient, repo: str) -> list[dict[str, Any]]:
    answer = api.get("/v1/jobs", params={"repo": repo})
    assert answer.status_code == 200, answer.text
    jobs: list[dict[str, Any]] = answer.json()["jobs"]
    return jobs


def test_a_hook_is_registered_with_its_url_and_a_secret_shown_once(
    api: TestClient, project: str
) -> None:
    answer = api.post(
        "/v1/push-hooks",
        json={"platform": "github", "clone_url": f"https://github.com/{project}.git"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    hook = answer.json()
    assert hook["repo"] == project and hook["platform"] == "github"
    assert hook["secret"].startswith("phsec_") and len(hook["secret"]) > 40
    assert path_of(hook) == f"/v1/hooks/github/{hook['hook_id']}"
    assert project.partition("/")[0] not in hook["url"]  # names no tenant, no repository
    listed = api.get("/v1/push-hooks", params={"repo": project}).json()["push_hooks"]
    assert [h["hook_id"] for h in listed] == [hook["hook_id"]]
    assert "secret" not in listed[0] and hook["secret"] not in json.dumps(listed)
    again = api.post(
        "/v1/push-hooks",
        json={"platform": "github", "clone_url": f"https://github.com/{project}.git"},
    )
    assert again.status_code == 409, again.text


def test_a_signed_github_push_enqueues_the_ref_at_its_commit_from_the_registered_url(
    api: TestClient, platform_client: TestClient, project: str
) -> None:
    hook = register(api, "github", project)
    body = github_payload(project)
    headers = github_headers(hook["secret"], body)
    first = platform_client.post(path_of(hook), content=body, headers=headers)
    assert first.status_code == 202, first.text
    queued = first.json()
    assert queued["status"] == "queued" and queued["ref_name"] == "feature/x"
    job = api.get(f"/v1/jobs/{queued['job_id']}").json()
    assert job["repo"] == project and job["commit"] == SHA
    # The registered URL at the pushed commit: never a URL from the payload.
    assert job["source"] == f"https://github.com/{project}.git@{SHA}"
    # A redelivery (same X-GitHub-Delivery) finds the same job: nothing more is enqueued.
    replay = platform_client.post(path_of(hook), content=body, headers=headers)
    assert replay.status_code == 200, replay.text
    assert replay.json()["job_id"] == queued["job_id"] and replay.json()["status"] == "existing"
    # The next push (a new delivery, a new commit) is a new job; a tag is indexed as "v1".
    tag = github_payload(project, ref="refs/tags/v1", after=SHA2)
    second = platform_client.post(
        path_of(hook), content=tag, headers=github_headers(hook["secret"], tag)
    )
    assert second.status_code == 202 and second.json()["ref_name"] == "v1"
    assert len(jobs_of(api, project)) == 2


def test_gitlab_push_and_tag_push_enqueue_with_the_secret_token(
    api: TestClient, platform_client: TestClient, project: str
) -> None:
    hook = register(api, "gitlab", project)
    assert path_of(hook) == f"/v1/hooks/gitlab/{hook['hook_id']}"
    for event, ref, commit, name in [
        ("Push Hook", "refs/heads/main", SHA, "main"),
        ("Tag Push Hook", "refs/tags/v1.0", SHA2, "v1.0"),
    ]:
        body = gitlab_payload(project, ref=ref, after=commit)
        headers = {
            "X-Gitlab-Event": event,
            "X-Gitlab-Token": hook["secret"],
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        }
        answer = platform_client.post(path_of(hook), content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.json()["ref_name"] == name and answer.json()["commit"] == commit
    assert len(jobs_of(api, project)) == 2


def test_ping_and_other_events_and_refs_are_answered_and_enqueue_nothing(
    api: TestClient, platform_client: TestClient, project: str
) -> None:
    hook = register(api, "github", project)
    secret, url = hook["secret"], path_of(hook)
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    answer = platform_client.post(url, content=ping, headers=github_headers(secret, ping, "ping"))
    assert answer.status_code == 200 and answer.json()["status"] == "pong"
    issue = b'{"action": "opened"}'
    other = platform_client.post(
        url, content=issue, headers=github_headers(secret, issue, "issues")
    )
    assert other.status_code == 202
    assert other.json() == {"status": "ignored", "reason": "event 'issues' is not a push"}
    pull = github_payload(project, ref="refs/pull/7/head")
    ignored = platform_client.post(url, content=pull, headers=github_headers(secret, pull))
    assert ignored.status_code == 202 and "not a branch or a tag" in ignored.json()["reason"]
    assert jobs_of(api, project) == []


Attempt = Callable[[dict[str, Any], dict[str, Any], str], tuple[str, bytes, dict[str, str]]]


def _unsigned(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)
    return path_of(hook), body, github_headers(None, body)


def _wrong_signature(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)
    headers = github_headers(hook["secret"], body)
    headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    return path_of(hook), body, headers


def _signed_for_another_body(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)
    headers = github_headers(hook["secret"], github_payload(project, after=SHA2))
    return path_of(hook), body, headers


def _another_hooks_secret(
    hook: dict[str, Any], other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)
    return path_of(hook), body, github_headers(other["secret"], body)


def _foreign_repository(
    hook: dict[str, Any], other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    # Correctly signed, but of the other hook's repository (the secret reused there).
    body = github_payload(other["repo"])
    return path_of(hook), body, github_headers(hook["secret"], body)


def _file_url_payload(
    hook: dict[str, Any], _other: dict[str, Any], _project: str
) -> tuple[str, bytes, dict[str, str]]:
    payload = json.loads(github_payload("x/y"))
    payload["repository"] = {"clone_url": "file:///etc", "ssh_url": "git@10.0.0.1:secret/repo"}
    body = json.dumps(payload).encode()
    return path_of(hook), body, github_headers(hook["secret"], body)


def _not_json(
    hook: dict[str, Any], _other: dict[str, Any], _project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D"  # the form content type
    return path_of(hook), body, github_headers(hook["secret"], body)


def _oversized(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)[:-1] + b', "pad": "' + b"x" * (1 << 20) + b'"}'
    return path_of(hook), body, github_headers(hook["secret"], body)


def _unknown_hook(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)
    return "/v1/hooks/github/ph_" + "0" * 32, body, github_headers(hook["secret"], body)


def _not_a_hook_id(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)
    return (
        "/v1/hooks/github/" + hook["repo"].partition("/")[0],
        body,
        github_headers(hook["secret"], body),
    )


def _other_platform(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)
    return (
        f"/v1/hooks/gitlab/{hook['hook_id']}",
        body,
        {"X-Gitlab-Token": hook["secret"], "X-Gitlab-Event": "Push Hook"},
    )


def _bad_delivery_id(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project)
    headers = github_headers(hook["secret"], body)
    headers["X-GitHub-Delivery"] = "x" * 300
    return path_of(hook), body, headers


def _malformed_ref(
    hook: dict[str, Any], _other: dict[str, Any], project: str
) -> tuple[str, bytes, dict[str, str]]:
    body = github_payload(project, ref="refs/heads/--upload-pack=touch /tmp/x")
    return path_of(hook), body, github_headers(hook["secret"], body)


HOSTILE: list[tuple[Attempt, int, str]] = [
    (_unsigned, 401, "X-Hub-Signature-256: missing"),
    (_wrong_signature, 401, "does not match"),
    (_signed_for_another_body, 401, "does not match"),
    (_another_hooks_secret, 401, "does not match"),
    (_foreign_repository, 403, "not of this hook's repository"),
    (_file_url_payload, 403, "not of this hook's repository"),
    (_not_json, 400, "not JSON"),
    (_oversized, 413, "larger than"),
    (_unknown_hook, 404, "not found"),
    (_not_a_hook_id, 404, "not found"),
    (_other_platform, 404, "not found"),
    (_bad_delivery_id, 400, "delivery id"),
    (_malformed_ref, 400, "ref:"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("attempt", "status", "detail"), HOSTILE, ids=[a.__name__ for a, _, _ in HOSTILE]
)
def test_a_bad_delivery_gets_a_4xx_enqueues_nothing_and_is_audited(
    api: TestClient,
    platform_client: TestClient,
    project: str,
    audit_file: Path,
    attempt: Attempt,
    status: int,
    detail: str,
) -> None:
    hook = register(api, "github", project)
    other = register(api, "github", f"{project}-other")
    path, body, headers = attempt(hook, other, project)
    answer = platform_client.post(path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert detail in answer.json()["detail"]
    # An unverified caller never reads the hook's tenant's quota use (the token's answers do).
    assert not [h for h in answer.headers if h.lower().startswith("x-quota-remaining")]
    assert [h for h in api.get("/v1/repos").headers if h.lower().startswith("x-quota-remaining")]
    assert jobs_of(api, project) == [] and jobs_of(api, other["repo"]) == []
    line = _audit_line(audit_file, answer.headers["x-request-id"])
    assert line["event"] == "refused" and line["status"] == status
    assert detail in line["reason"] and line["path"] == path
    text = audit_file.read_text(encoding="utf-8")
    assert hook["secret"] not in text and other["secret"] not in text


def test_a_gitlab_delivery_without_its_hooks_token_is_401_and_enqueues_nothing(
    api: TestClient, platform_client: TestClient, project: str
) -> None:
    hook = register(api, "gitlab", project)
    other = register(api, "gitlab", f"{project}-other")
    body = gitlab_payload(project)
    for token, detail in [
        (None, "X-Gitlab-Token: missing"),
        ("", "X-Gitlab-Token: missing"),
        (other["secret"], "does not match"),  # another hook's secret
        (hook["secret"][:-1], "does not match"),
    ]:
        headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": str(uuid.uuid4())}
        if token is not None:
            headers["X-Gitlab-Token"] = token
        answer = platform_client.post(path_of(hook), content=body, headers=headers)
        assert answer.status_code == 401 and detail in answer.json()["detail"], answer.text
    assert jobs_of(api, project) == []


def _audit_line(path: Path, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
            entry: dict[str, Any] = json.loads(line)
            if entry["request_id"] == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no audit line for request {request_id}")


def test_an_accepted_delivery_is_audited_as_the_tenants_write(
    api: TestClient, platform_client: TestClient, project: str, audit_file: Path
) -> None:
    hook = register(api, "github", project)
    body = github_payload(project)
    answer = platform_client.post(
        path_of(hook), content=body, headers=github_headers(hook["secret"], body)
    )
    assert answer.status_code == 202
    line = _audit_line(audit_file, answer.headers["x-request-id"])
    assert line["event"] == "write" and line["hook_id"] == hook["hook_id"]
    assert line["token_id"] is None and line["tenant"]


@pytest.mark.parametrize(
    ("clone_url", "detail"),
    [
        ("file:///etc", "clone_url:"),
        ("/etc/passwd", "clone_url:"),
        ("https://user:hunter2@github.com/acme/w.git", "holds credentials"),
        ("ext::sh -c touch% /tmp/pwned", "clone_url:"),
        ("--upload-pack=touch /tmp/x", "clone_url:"),
    ],
)
def test_a_clone_url_the_source_policy_refuses_registers_no_hook(
    api: TestClient, clone_url: str, detail: str
) -> None:
    answer = api.post(
        "/v1/push-hooks", json={"platform": "github", "clone_url": clone_url, "repo": "x/y"}
    )
    assert answer.status_code == 422, answer.text
    assert detail in answer.json()["detail"] and "hunter2" not in answer.text
    assert api.get("/v1/push-hooks", params={"repo": "x/y"}).json()["push_hooks"] == []


def test_an_unknown_platform_or_credential_registers_no_hook(api: TestClient, project: str) -> None:
    url = f"https://github.com/{project}.git"
    bad = api.post("/v1/push-hooks", json={"platform": "bitbucket", "clone_url": url})
    assert bad.status_code == 422 and "platform" in bad.json()["detail"]
    missing = api.post(
        "/v1/push-hooks", json={"platform": "github", "clone_url": url, "credential": "nope"}
    )
    assert missing.status_code in (404, 422) and "credential" in missing.json()["detail"]
    assert api.get("/v1/push-hooks", params={"repo": project}).json()["push_hooks"] == []


def test_another_tenant_can_neither_see_nor_remove_a_hook(
    api: TestClient, platform_client: TestClient, project: str, other_tenant_token: str
) -> None:
    hook = register(api, "github", project)
    theirs = {"Authorization": f"Bearer {other_tenant_token}"}
    listed = api.get("/v1/push-hooks", headers=theirs).json()["push_hooks"]
    assert hook["hook_id"] not in json.dumps(listed)
    assert api.delete(f"/v1/push-hooks/{hook['hook_id']}", headers=theirs).status_code == 404
    # Removed by its own tenant, its URL answers 404 and enqueues nothing.
    assert api.delete(f"/v1/push-hooks/{hook['hook_id']}").status_code == 204
    body = github_payload(project)
    gone = platform_client.post(
        path_of(hook), content=body, headers=github_headers(hook["secret"], body)
    )
    assert gone.status_code == 404 and jobs_of(api, project) == []


def test_a_delete_event_deletes_the_ref_and_never_enqueues(
    api: TestClient, platform_client: TestClient, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routing of delete events (each answer of the deletion); the deletion itself, on
    the real stores, is tested end to end in tests/security/test_push_hook_indexing.py."""
    github = register(api, "github", project)
    gitlab = register(api, "gitlab", project)
    calls: list[tuple[RepoRef, str]] = []
    answers: list[bool | Exception] = [
        True,
        False,
        ConflictError("ref 'main' is the default ref"),
        True,
    ]

    def delete_ref(_state: object, repo: RepoRef, ref_name: str) -> bool:
        calls.append((repo, ref_name))
        found = answers.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    monkeypatch.setattr(routes_push_hooks, "delete_ref", delete_ref)
    url = path_of(github)
    for ref, status, outcome in [
        ("refs/heads/feature/x", 200, "deleted"),
        ("refs/tags/v1", 200, "absent"),
        ("refs/heads/main", 409, None),
    ]:
        body = github_payload(project, ref=ref, after=ZERO)
        answer = platform_client.post(
            url, content=body, headers=github_headers(github["secret"], body)
        )
        assert answer.status_code == status, answer.text
        if outcome is not None:
            assert answer.json()["status"] == outcome
    body = gitlab_payload(project, ref="refs/heads/old", after=ZERO)
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": gitlab["secret"]}
    assert platform_client.post(path_of(gitlab), content=body, headers=headers).status_code == 200
    tenant = calls[0][0].tenant
    assert calls == [
        (RepoRef(tenant, project), "feature/x"),
        (RepoRef(tenant, project), "v1"),
        (RepoRef(tenant, project), "main"),
        (RepoRef(tenant, project), "old"),
    ]
    assert jobs_of(api, project) == []


def test_the_openapi_document_shows_the_push_hook_endpoints(platform_client: TestClient) -> None:
    paths = platform_client.get("/openapi.json").json()["paths"]
    for path in ("/v1/hooks/github/{hook_id}", "/v1/hooks/gitlab/{hook_id}"):
        operation = paths[path]["post"]
        assert {"401", "404", "413"} <= set(operation["responses"])
        assert "x-quarry-scope" not in operation  # no token: the hook's secret proves it
    assert "x-hub-signature-256" in json.dumps(paths["/v1/hooks/github/{hook_id}"]).lower()
    assert paths["/v1/push-hooks"]["post"]["x-quarry-scope"] == "admin"


@pytest.fixture
def full_api(stack: Stack) -> Iterator[TestClient]:
    with idle(stack, db=FULL_DB, queue_bound_ingest=1) as client:
        yield client


def test_a_full_ingest_queue_answers_503_so_the_delivery_can_be_redelivered(
    full_api: TestClient, project: str
) -> None:
    hook = register(full_api, "github", project)
    platform = TestClient(full_api.app)
    first_body = github_payload(project)
    first = platform.post(
        path_of(hook), content=first_body, headers=github_headers(hook["secret"], first_body)
    )
    assert first.status_code == 202, first.text
    body = github_payload(project, ref="refs/heads/other", after=SHA2)
    headers = github_headers(hook["secret"], body)
    refused = platform.post(path_of(hook), content=body, headers=headers)
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert [j["commit"] for j in jobs_of(full_api, project)] == [SHA]  # the refused one not kept
