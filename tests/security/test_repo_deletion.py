"""Deleting a repository on the session stack (real API, workers and stores): every
store loses it, content it shared with another repository stays, and neither another
tenant nor a racing job gets past the deletion.

Tenant A indexes two repositories that hold one file of identical content; it deletes
one. Tenant B tries to delete A's repositories and to read A's deletion.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from config.settings import child_environment
from devstack.stack import Stack
from pipeline.adapters.neo4j.graph_store import Neo4jGraphStore
from pipeline.adapters.postgres.connect import connect
from pipeline.adapters.postgres.deletion_store import PgRepoDeletionStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.models import RepoRef
from tests.security.helpers import Tenant, enqueue, index, wait
from tests.stackutil import free_ports, run_quarry

pytestmark = pytest.mark.timeout(240)
SHARED = (
    '"""A helper both repositories hold, byte for byte."""\n\n\n'
    "def shared_round_half_even(value):\n"
    "    return round(value)\n"
)


LATE_FILES = 150


def _sql(endpoints: Endpoints, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with connect(endpoints.postgres_dsn) as conn:
        return [tuple(r) for r in conn.execute(text, params).fetchall()]


def _repository_id(endpoints: Endpoints, tenant: str, name: str) -> int | None:
    rows = _sql(
        endpoints, "SELECT id FROM repositories WHERE tenant_id = %s AND name = %s", tenant, name
    )
    return int(rows[0][0]) if rows else None


def _finished(api: httpx.Client, deletion_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = api.get(f"/v1/repo-deletions/{deletion_id}")
        assert answer.status_code == 200, answer.text
        status = answer.json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"deletion {deletion_id} did not finish: {status}")


def _search(api: httpx.Client, q: str, **params: Any) -> list[dict[str, Any]]:
    answer = api.get("/v1/search", params={"q": q, "mode": "lexical", "k": 50, **params})
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def test_a_deleted_repository_leaves_every_store_and_shared_content_stays(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    tiny_repo: Callable[[str], Path],
    endpoints: Endpoints,
    vectors: PgVectorStore,
    graph: Neo4jGraphStore,
) -> None:
    a, b = new_tenant("owner"), new_tenant("other")
    api_a, api_b = client_for(a), client_for(b)
    mk, mg = f"keep{uuid.uuid4().hex[:8]}", f"gone{uuid.uuid4().hex[:8]}"
    keep_root, gone_root = tiny_repo(mk), tiny_repo(mg)
    for root in (keep_root, gone_root):
        (root / "shared_helper.py").write_text(SHARED, encoding="utf-8")
    keep, gone = f"team/keep-{mk}", f"team/gone-{mg}"
    index(api_a, source=str(keep_root), repo=keep)
    index(api_a, source=str(gone_root), repo=gone)
    gone_id = _repository_id(endpoints, a.name, gone)
    assert gone_id is not None
    keep_ref, gone_ref = RepoRef(a.name, keep), RepoRef(a.name, gone)
    keep_chunks = vectors.chunk_keys(keep_ref)
    assert vectors.chunk_keys(gone_ref) and graph.node_ids(gone_ref)

    blobs = dict(
        _sql(
            endpoints,
            "SELECT DISTINCT path, content_sha256 FROM files WHERE repository_id = %s",
            gone_id,
        )
    )
    shared_blob = blobs.pop("shared_helper.py")
    unique_blobs = sorted(set(blobs.values()))
    chunk_hashes = {
        str(r[0])
        for r in _sql(
            endpoints,
            "SELECT content_sha256 FROM chunks WHERE repository_id = %s AND path <> %s",
            gone_id,
            "shared_helper.py",
        )
    }
    cached = _sql(
        endpoints,
        "SELECT content_sha256 FROM embedding_cache WHERE content_sha256 = ANY(%s)",
        sorted(chunk_hashes),
    )
    assert cached, "the deleted repository's chunks were embedded through the cache"
    shared_cache = _sql(
        endpoints,
        "SELECT e.content_sha256 FROM embedding_cache e JOIN chunks c"
        " ON c.content_sha256 = e.content_sha256 WHERE c.repository_id = %s AND c.path = %s",
        gone_id,
        "shared_helper.py",
    )
    assert shared_cache

    # Another tenant: the same 404 as for a name nobody has, and nothing changes.
    unknown = api_b.delete(f"/v1/repos/team/none-{mg}")
    for name in (gone, keep):
        foreign = api_b.delete(f"/v1/repos/{name}")
        assert foreign.status_code == 404 == unknown.status_code
        assert foreign.json()["detail"] == unknown.json()["detail"].replace(f"team/none-{mg}", name)
    assert api_a.get(f"/v1/repos/{gone}").status_code == 200

    # A job of the repository in progress: the deletion is refused, naming the job.
    # Enough new files that the job is still running when the deletion asks: a job of
    # one changed file can reach `done` before the next request (issue 22 made it fast).
    for n in range(LATE_FILES):
        body = f"def late_addition_{n}(value):\n    return value * {n} + {n * n}\n"
        (gone_root / f"late_{n}.py").write_text(body, encoding="utf-8")
    busy_job = enqueue(api_a, source=str(gone_root), repo=gone)
    busy = api_a.delete(f"/v1/repos/{gone}")
    assert busy.status_code == 409, busy.text
    assert busy_job in busy.json()["detail"]
    assert wait(api_a, busy_job)["status"] == "done"

    # The deletion: 202, then at once hidden and closed to new jobs.
    started = api_a.delete(f"/v1/repos/{gone}")
    assert started.status_code == 202, started.text
    deletion_id = started.json()["deletion_id"]
    assert started.json()["status_url"].endswith(f"/v1/repo-deletions/{deletion_id}")
    racing = api_a.post("/v1/jobs", json={"source": str(gone_root), "repo": gone})
    assert racing.status_code == 409, racing.text
    assert deletion_id in racing.json()["detail"]
    assert api_b.get(f"/v1/repo-deletions/{deletion_id}").status_code == 404
    assert api_b.get(f"/v1/repo-deletions/{uuid.uuid4()}").status_code == 404

    status = _finished(api_a, deletion_id)
    assert status["status"] == "done", status
    assert status["repo"] == gone and status["error"] is None
    counters = status["counters"]
    for counter in ("chunks", "files", "graph_nodes", "jobs", "snapshots", "repository"):
        assert counters.get(counter, 0) > 0, (counter, counters)
    assert counters["blobs"] == len(unique_blobs) + LATE_FILES  # the late files' too
    assert counters["cache_rows"] >= len(cached)

    # Gone from every store.
    assert _repository_id(endpoints, a.name, gone) is None
    for table in ("chunks", "files", "snapshots", "jobs", "file_symbols", "symbol_names"):
        left = _sql(endpoints, f"SELECT count(*) FROM {table} WHERE repository_id = %s", gone_id)
        assert left == [(0,)], table
    assert vectors.chunk_keys(gone_ref) == set()
    assert graph.node_ids(gone_ref) == set()
    assert (
        _sql(endpoints, "SELECT sha256 FROM source_blobs WHERE sha256 = ANY(%s)", unique_blobs)
        == []
    )
    assert (
        _sql(
            endpoints,
            "SELECT content_sha256 FROM embedding_cache WHERE content_sha256 = ANY(%s)",
            sorted(chunk_hashes),
        )
        == []
    )
    assert api_a.get(f"/v1/repos/{gone}").status_code == 404
    assert gone not in {r["name"] for r in api_a.get("/v1/repos").json()["repos"]}
    assert not [r for r in _search(api_a, f"settle_{mg}") if mg in str(r)]
    assert api_a.delete(f"/v1/repos/{gone}").status_code == 404

    # The other repository: whole, searchable, and its shared content still there.
    assert vectors.chunk_keys(keep_ref) == keep_chunks
    assert [r for r in _search(api_a, f"settle_{mk}") if mk in str(r)]
    assert any(
        r["path"] == "shared_helper.py" for r in _search(api_a, "shared_round_half_even", repo=keep)
    )
    assert _sql(endpoints, "SELECT 1 FROM source_blobs WHERE sha256 = %s", shared_blob) == [(1,)]
    assert _sql(
        endpoints,
        "SELECT 1 FROM embedding_cache WHERE content_sha256 = %s",
        shared_cache[0][0],
    )
    # The deletion stays readable by its tenant, and a new repository of the name may be
    # indexed afresh.
    assert api_a.get(f"/v1/repo-deletions/{deletion_id}").json()["status"] == "done"
    index(api_a, source=str(gone_root), repo=gone)


def test_the_openapi_document_shows_repository_deletion(endpoints: Endpoints) -> None:
    document = httpx.get(f"{endpoints.api_url}/openapi.json", timeout=30).json()
    paths = document["paths"]
    delete = paths["/v1/repos/{name}"]["delete"]
    assert "202" in delete["responses"] and "Delete the repository" in delete["description"]
    queued = document["components"]["schemas"]["DeletionQueued"]["properties"]
    assert {"deletion_id", "status_url"} <= set(queued)
    status = paths["/v1/repo-deletions/{deletion_id}"]["get"]
    assert "200" in status["responses"]


def test_the_status_path_is_not_a_repository_name(
    new_tenant: Callable[[str], Tenant], client_for: Callable[[Tenant], httpx.Client]
) -> None:
    api = client_for(new_tenant("paths"))
    unknown = api.get(f"/v1/repo-deletions/{uuid.uuid4()}")
    assert unknown.status_code == 404 and "deletion" in unknown.json()["detail"]
    # A repository may be named like the status path: it is a repository, not a status.
    missing = api.get("/v1/repos/repo-deletions/x")
    assert missing.status_code == 404 and "repository" in missing.json()["detail"]
    assert api.delete("/v1/repos/repo-deletions/x").status_code == 404


def test_quarry_repo_delete_follows_the_deletion_with_the_ci_exit_codes(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    tiny_repo: Callable[[str], Path],
    stack: Stack,
    tmp_path: Path,
) -> None:
    tenant = new_tenant("cli")
    api = client_for(tenant)
    env = {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}
    env["QUARRY_API_TOKEN"] = tenant.token
    marker = f"cli{uuid.uuid4().hex[:8]}"
    index(api, source=str(tiny_repo(marker)), repo=f"team/{marker}")

    done = run_quarry("repo", "delete", f"team/{marker}", "--wait", "--json", env=env)
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert final["status"] == "done" and final["repo"] == f"team/{marker}"
    assert final["counters"]["chunks"] > 0
    assert api.get(f"/v1/repos/team/{marker}").status_code == 404

    again = run_quarry("repo", "delete", f"team/{marker}", "--wait", env=env)
    assert again.returncode == 2 and "not found" in again.stderr and again.stdout == ""

    other = f"team/{marker}-2"
    index(api, source=str(tiny_repo(f"{marker}x")), repo=other)
    queued = run_quarry("repo", "delete", other, env=env)
    assert queued.returncode == 0, queued.stderr
    deletion_id = queued.stdout.strip()
    assert api.get(f"/v1/repo-deletions/{deletion_id}").status_code == 200

    (port,) = free_ports(1)
    away = {**env, "QUARRY_API_URL": f"http://127.0.0.1:{port}"}
    unreachable = run_quarry("repo", "delete", other, env=away, timeout_s=60)
    assert unreachable.returncode == 3, unreachable.stderr


def test_a_deletion_whose_message_was_lost_is_finished_by_the_sweep(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    tiny_repo: Callable[[str], Path],
    endpoints: Endpoints,
    graph: Neo4jGraphStore,
) -> None:
    """As if the API died between recording the deletion and sending its task (or a
    worker died with it and its message): the record alone is enough."""
    tenant = new_tenant("lost")
    api = client_for(tenant)
    marker = f"lost{uuid.uuid4().hex[:8]}"
    repo = f"team/{marker}"
    index(api, source=str(tiny_repo(marker)), repo=repo)
    with PgRepoDeletionStore(endpoints.postgres_dsn) as store:
        deletion, created = store.begin(RepoRef(tenant.name, repo))  # no task sent
    assert created
    assert api.get(f"/v1/repos/{repo}").status_code == 404  # hidden at once
    status = _finished(api, deletion.deletion_id, timeout_s=60)
    assert status["status"] == "done", status
    assert graph.node_ids(RepoRef(tenant.name, repo)) == set()
    assert _repository_id(endpoints, tenant.name, repo) is None
