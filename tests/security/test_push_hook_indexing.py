"""A push webhook end to end, through the session stack's API and workers: a tenant
registers a GitHub hook for its private repository (a real git server over TLS, the
tenant's credential), a signed push delivery enqueues the pushed commit, the workers
clone the registered URL at that commit and it becomes searchable. A delivery whose
payload names a ``file://`` clone URL still clones only the registered one."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from config.settings import QuarrySettings
from pipeline.push_hooks.hooks import github_signature
from tests.security.git_servers import (
    GitHttpServer,
    bare_repo,
    git_http_server,
    loopback_certificates,
)
from tests.security.helpers import Tenant, wait

pytestmark = pytest.mark.timeout(300)
MARKER = "wrenbolt"
TOKEN = "qforge_" + uuid.uuid4().hex + "PH"


@pytest.fixture(scope="module")
def forge(
    stack_settings: QuarrySettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GitHttpServer, Path]]:
    root = tmp_path_factory.mktemp("push-forge")
    tree = root / "tree"
    tree.mkdir()
    (tree / f"{MARKER}_gears.py").write_text(f"def turn_{MARKER}(teeth):\n    return teeth + 1\n")
    repo = bare_repo(tree, root / "srv" / "gears.git")
    certificates = loopback_certificates(root / "tls")
    assert stack_settings.source_git_ca_file is not None
    stack_settings.source_git_ca_file.write_bytes(certificates.ca_pem)
    with git_http_server(repo.parent, certificates, user="bot", token=TOKEN) as https:
        yield https, repo


def test_a_signed_push_indexes_the_pushed_commit_of_the_registered_repository(
    forge: tuple[GitHttpServer, Path],
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    secrets_used: list[str],
) -> None:
    https, repo = forge
    secrets_used.append(TOKEN)
    api = client_for(new_tenant("push-hook"))
    credential = {"name": "forge", "kind": "https_token", "scope": https.url, "username": "bot"}
    assert api.post("/v1/credentials", json=credential | {"token": TOKEN}).status_code == 201
    clone_url = f"{https.url}/{repo.name}"
    made = api.post(
        "/v1/push-hooks",
        json={"platform": "github", "clone_url": clone_url, "repo": "gears", "credential": "forge"},
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    secrets_used.append(hook["secret"])
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": head,
            "deleted": False,
            "head_commit": {"id": head},
            # Only the repository's identity is read from here; the clone is the hook's.
            "repository": {"clone_url": clone_url, "ssh_url": "file:///etc"},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(hook["secret"], body),
    }
    with httpx.Client(base_url=str(api.base_url), timeout=60) as platform:  # no token
        answer = platform.post(httpx.URL(hook["url"]).path, content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    status = wait(api, answer.json()["job_id"])
    assert status["status"] == "done", status
    assert status["commit"] == head and status["source"] == f"{clone_url}@{head}"
    hits = api.get("/v1/search", params={"q": f"turn_{MARKER}", "repo": "gears"})
    assert hits.status_code == 200 and MARKER in hits.text

    # The same commit pushed to a new branch publishes that ref (a job of its own, from
    # the shared snapshot); the branch's delete event then deletes the ref, and the
    # default ref (named by the first payload's default_branch) cannot be deleted.
    def deliver(ref: str, after: str) -> httpx.Response:
        payload = {
            "ref": ref,
            "after": after,
            "deleted": after == "0" * 40,
            "head_commit": None if after == "0" * 40 else {"id": after},
            "repository": {"clone_url": clone_url, "default_branch": "main"},
        }
        raw = json.dumps(payload).encode()
        signed = headers | {
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": github_signature(hook["secret"], raw),
        }
        with httpx.Client(base_url=str(api.base_url), timeout=60) as platform:
            return platform.post(httpx.URL(hook["url"]).path, content=raw, headers=signed)

    pushed = deliver("refs/heads/feature/gears", head)
    assert pushed.status_code == 202, pushed.text
    branch = wait(api, pushed.json()["job_id"])
    assert (branch["status"], branch["ref"], branch["published"]) == ("done", "feature/gears", True)
    refs = api.get("/v1/refs", params={"repo": "gears"}).json()["refs"]
    assert [(r["name"], r["default"]) for r in refs] == [("main", True), ("feature/gears", False)]
    gone = deliver("refs/heads/feature/gears", "0" * 40)
    assert (gone.status_code, gone.json()["status"]) == (200, "deleted")
    assert [r["name"] for r in api.get("/v1/refs", params={"repo": "gears"}).json()["refs"]] == [
        "main"
    ]
    assert deliver("refs/heads/feature/gears", "0" * 40).json()["status"] == "absent"
    refused = deliver("refs/heads/main", "0" * 40)
    assert refused.status_code == 409 and "default ref" in refused.json()["detail"]
