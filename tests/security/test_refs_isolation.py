"""Refs and tenants on the session stack (real API, workers and stores): a tenant reaches
only its own repositories' refs. Tenant A indexes a repository on two refs (archives
uploaded with a ref); tenant B, with a repository of the same name, tries to list, search
and delete A's refs.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Callable

import httpx
import pytest

from config.endpoints import Endpoints
from tests.security.helpers import Tenant, wait

pytestmark = pytest.mark.timeout(240)


def _archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"pkg/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _upload(api: httpx.Client, repo: str, ref: str, files: dict[str, str]) -> dict[str, object]:
    answer = api.post(
        "/v1/jobs/archive",
        params={"repo": repo, "ref": ref},
        content=_archive(files),
        headers={"Content-Type": "application/gzip"},
    )
    assert answer.status_code == 202, answer.text
    return wait(api, answer.json()["job_id"])


def test_a_tenant_reaches_only_its_own_refs(
    new_tenant: Callable[[str], Tenant], client_for: Callable[[Tenant], httpx.Client]
) -> None:
    api_a = client_for(new_tenant("refs-a"))
    api_b = client_for(new_tenant("refs-b"))
    repo = f"shared-name-{uuid.uuid4().hex[:6]}"
    main = _upload(api_a, repo, "main", {"a.py": "def alpha_main():\n    return 1\n"})
    secret = {
        "a.py": "def alpha_main():\n    return 1\n",
        "s.py": "def okapi_secret():\n    return 2\n",
    }
    branch = _upload(api_a, repo, "feature/secret", secret)
    assert (main["ref"], branch["ref"], branch["published"]) == ("main", "feature/secret", True)
    assert branch["files"]["todo"] == 1  # s.py only: a.py is the default ref's
    _upload(api_b, repo, "main", {"b.py": "def beta():\n    return 3\n"})

    mine = api_a.get("/v1/refs", params={"repo": repo}).json()["refs"]
    assert [r["name"] for r in mine] == ["main", "feature/secret"]
    theirs = api_b.get("/v1/refs", params={"repo": repo}).json()["refs"]
    assert [r["name"] for r in theirs] == ["main"]  # B's own repository of that name
    # B cannot read A's branch by ref or by commit, nor delete it.
    by_ref = api_b.get(
        "/v1/search", params={"q": "okapi_secret", "repo": repo, "ref": "feature/secret"}
    )
    assert by_ref.status_code == 404 and "no ref 'feature/secret'" in by_ref.json()["detail"]
    by_commit = api_b.get(
        "/v1/search", params={"q": "okapi_secret", "commit": str(branch["commit"])[:12]}
    )
    assert by_commit.status_code == 404
    assert "okapi" not in by_commit.text
    deleted = api_b.delete("/v1/refs", params={"repo": repo, "ref": "feature/secret"})
    assert deleted.status_code == 404
    # A's branch is intact and searchable by A alone.
    found = api_a.get(
        "/v1/search", params={"q": "okapi_secret", "repo": repo, "ref": "feature/secret"}
    )
    assert found.status_code == 200 and "okapi_secret" in found.text
    # Bad refs are refused naming the parameter, before any store is read.
    bad = api_a.get("/v1/search", params={"q": "x", "ref": "a..b"})
    assert bad.status_code == 422 and "ref" in bad.json()["detail"]
    injected = api_a.get("/v1/search", params={"q": "x", "commit": "%"})
    assert injected.status_code == 422 and "commit" in injected.json()["detail"]


def test_the_openapi_document_shows_refs(endpoints: Endpoints) -> None:
    document = httpx.get(f"{endpoints.api_url}/openapi.json", timeout=30).json()
    paths = document["paths"]
    search = {p["name"] for p in paths["/v1/search"]["get"]["parameters"]}
    assert {"ref", "commit"} <= search
    graph = {p["name"] for p in paths["/v1/graph/symbol"]["get"]["parameters"]}
    assert "ref" in graph
    assert {"get", "delete"} <= set(paths["/v1/refs"])
    archive = {p["name"] for p in paths["/v1/jobs/archive"]["post"]["parameters"]}
    assert "ref" in archive
    create = document["components"]["schemas"]["JobCreate"]["properties"]
    assert {"ref", "default_ref"} <= set(create)
