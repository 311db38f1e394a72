"""Tenant A can neither read, search, cancel nor write into tenant B's repositories, on
the session stack (real API, workers and stores).

Each tenant is a fresh one with its own token; B indexes a tiny repository whose every
identifier carries a marker of B's, so that a leak of B's chunks into anything A sees
is a string search. The stores are read directly too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from pipeline.adapters.neo4j.graph_store import Neo4jGraphStore
from pipeline.adapters.postgres.connect import connect
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.models import RepoRef
from tests.security.helpers import Tenant, enqueue, index, wait

pytestmark = pytest.mark.timeout(180)
MODES = ("lexical", "vector", "hybrid")
Clients = tuple[Tenant, httpx.Client, Tenant, httpx.Client]


@pytest.fixture
def tenants(
    new_tenant: Callable[[str], Tenant], client_for: Callable[[Tenant], httpx.Client]
) -> Clients:
    a, b = new_tenant("a"), new_tenant("b")
    return a, client_for(a), b, client_for(b)


def marker(role: str) -> str:
    return f"{role}{uuid.uuid4().hex[:8]}"


def search(api: httpx.Client, **params: Any) -> httpx.Response:
    return api.get("/v1/search", params={"k": 50, **params})


def leaks(results: list[dict[str, Any]], secret_marker: str) -> list[dict[str, Any]]:
    return [r for r in results if secret_marker in json.dumps(r)]


def test_tenant_a_can_neither_read_search_nor_reconcile_tenant_b_repository(
    tenants: Clients, tiny_repo: Callable[[str], Path]
) -> None:
    _a, api_a, b, api_b = tenants
    mb = marker("bee")
    repo = f"team/widgets-{uuid.uuid4().hex[:8]}"  # no marker: results carry the name
    job_id = enqueue(api_b, source=str(tiny_repo(mb)), repo=repo)
    assert wait(api_b, job_id)["status"] == "done"
    symbol = f"open_{mb}_ledger"

    # B sees its own: so that A's empty answers below mean something.
    assert api_b.get(f"/v1/jobs/{job_id}").status_code == 200
    assert job_id in {j["job_id"] for j in api_b.get("/v1/jobs").json()["jobs"]}
    assert api_b.get(f"/v1/repos/{repo}").status_code == 200
    assert repo in {r["name"] for r in api_b.get("/v1/repos").json()["repos"]}
    for mode in ("lexical", "hybrid"):
        found = search(api_b, q=f"settle_{mb}", mode=mode).json()["results"]
        assert leaks(found, mb), f"B cannot find its own chunks ({mode})"
    assert api_b.get("/v1/graph/symbol", params={"repo": repo, "name": symbol}).status_code == 200

    checks = 0
    # Jobs: read, list, list by repository.
    mine = api_a.get(f"/v1/jobs/{job_id}")
    assert mine.status_code == 404 and mb not in mine.text
    assert job_id not in api_a.get("/v1/jobs").text
    assert api_a.get("/v1/jobs", params={"repo": repo}).json()["jobs"] == []
    checks += 3
    # Repositories: list and one.
    assert mb not in api_a.get("/v1/repos").text
    one = api_a.get(f"/v1/repos/{repo}")
    assert one.status_code == 404 and mb not in one.text
    checks += 2
    # Search: no filter (every mode), B's repository by name, and B's tenant in the name.
    for mode in MODES:
        for q in (f"settle_{mb}", f"{mb.title()}Ledger", "ledger balances amount"):
            response = search(api_a, q=q, mode=mode)
            assert response.status_code == 200, response.text
            assert leaks(response.json()["results"], mb) == [], (mode, q)
            checks += 1
        for name in (repo, f"{b.name}/{repo}", f"{b.name}:{repo}"):
            filtered = search(api_a, q=f"settle_{mb}", mode=mode, repo=name)
            assert filtered.status_code == 404 and "settle" not in filtered.text
            checks += 1
    # The graph: JSON and SVG.
    for fmt in ("json", "svg"):
        params = {"repo": repo, "name": symbol, "format": fmt}
        response = api_a.get("/v1/graph/symbol", params=params)
        assert response.status_code == 404 and f"settle_{mb}" not in response.text
        checks += 1
    # Reconcile (which can delete rows and enqueue a job): report or repair.
    for dry_run in (True, False):
        response = api_a.post(f"/v1/repos/{repo}/reconcile", json={"dry_run": dry_run})
        assert response.status_code == 404, response.text
        checks += 1
    # Cancel a finished job of B's: nothing to see, and it stays as it was.
    assert api_a.delete(f"/v1/jobs/{job_id}").status_code == 404
    assert api_b.get(f"/v1/jobs/{job_id}").json()["status"] == "done"
    checks += 1
    assert checks == 5 + 3 * 3 + 3 * 3 + 2 + 2 + 1
    print(f"\ntenant isolation (read/search/reconcile): {checks} refusals checked")


def test_tenant_a_cannot_cancel_tenant_b_running_job(
    tenants: Clients, tiny_repo: Callable[[str], Path]
) -> None:
    _a, api_a, _b, api_b = tenants
    mb = marker("bee")
    root = tiny_repo(mb)
    for number in range(40):  # enough files that the job is still going when A tries
        (root / f"module_{number}.py").write_text(
            f"def f_{mb}_{number}(x):\n    return x + {number}\n", encoding="utf-8"
        )
    job_id = enqueue(api_b, source=str(root), repo=f"cancel-{mb}")
    refused = api_a.delete(f"/v1/jobs/{job_id}")
    during = api_b.get(f"/v1/jobs/{job_id}").json()["status"]
    assert refused.status_code == 404, refused.text
    assert during in ("queued", "running"), f"the job ended before A tried: {during}"
    final = wait(api_b, job_id)
    assert final["status"] == "done", final
    assert not final["errors"], final


def _stores(
    endpoints: Endpoints, vectors: PgVectorStore, graph: Neo4jGraphStore, ref: RepoRef
) -> dict[str, Any]:
    with connect(endpoints.postgres_dsn) as conn:
        row = conn.execute(
            "SELECT r.id, d.snapshot_id, s.commit_sha, s.status,"
            " (SELECT count(*) FROM snapshots AS o WHERE o.repository_id = r.id),"
            " (SELECT count(*) FROM files AS f WHERE f.repository_id = r.id)"
            " FROM repositories AS r"
            " JOIN refs AS d ON d.repository_id = r.id AND d.name = r.default_ref"
            " JOIN snapshots AS s ON s.id = d.snapshot_id"
            " WHERE r.tenant_id = %s AND r.name = %s",
            (ref.tenant, ref.name),
        ).fetchone()
    return {
        "repository row": row,
        "chunk keys": vectors.chunk_keys(ref),
        "graph files": graph.file_versions(ref),
        "graph chunks": graph.chunk_ids(ref),
    }


def _view(repository: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in repository.items() if k != "last_indexed_at"}


def test_tenant_a_enqueueing_tenant_b_repository_name_writes_only_its_own(
    tenants: Clients,
    tiny_repo: Callable[[str], Path],
    endpoints: Endpoints,
    vectors: PgVectorStore,
    graph: Neo4jGraphStore,
) -> None:
    a, api_a, b, api_b = tenants
    mb, ma = marker("bee"), marker("ant")
    repo = f"shared-{uuid.uuid4().hex[:8]}"
    index(api_b, source=str(tiny_repo(mb)), repo=repo)
    b_ref, a_ref = RepoRef(b.name, repo), RepoRef(a.name, repo)
    before = _stores(endpoints, vectors, graph, b_ref)
    assert before["repository row"] and before["chunk keys"] and before["graph files"]
    b_view = api_b.get(f"/v1/repos/{repo}").json()
    b_search = {m: search(api_b, q=f"settle_{mb}", mode=m).json()["results"] for m in MODES}

    a_job = enqueue(api_a, source=str(tiny_repo(ma)), repo=repo)
    assert wait(api_a, a_job)["status"] == "done"

    # B's repository is as it was, in every store and through the API.
    assert _stores(endpoints, vectors, graph, b_ref) == before
    # last_indexed_at aside: in one run it moved 0.3 s after B's job said done, its
    # snapshot (id, commit, files) the same; eight more runs, with A's job and without,
    # did not repeat it, and no statement of A's job addresses B's repository id.
    assert _view(api_b.get(f"/v1/repos/{repo}").json()) == _view(b_view)
    for mode in MODES:
        after = search(api_b, q=f"settle_{mb}", mode=mode).json()["results"]
        assert [r["path"] for r in after] == [r["path"] for r in b_search[mode]], mode
        assert leaks(after, ma) == [], mode
    assert api_b.get(f"/v1/jobs/{a_job}").status_code == 404
    # A wrote a repository of its own, which holds A's files only.
    mine = _stores(endpoints, vectors, graph, a_ref)
    assert mine["repository row"][0] != before["repository row"][0]
    assert {p for p, _s, _c in mine["chunk keys"]} == {f"{ma}_ledger.py", f"{ma}_report.py"}
    assert not mine["graph chunks"] & before["graph chunks"]
    assert api_a.get(f"/v1/repos/{repo}").json()["chunks"] == len(mine["chunk keys"])
    for mode in MODES:
        for params in ({}, {"repo": repo}):
            own = search(api_a, q=f"settle_{ma}", mode=mode, **params).json()["results"]
            assert leaks(own, ma) and leaks(own, mb) == [], (mode, params)
            other = search(api_a, q=f"settle_{mb}", mode=mode, **params).json()["results"]
            assert leaks(other, mb) == [], (mode, params)
    symbol = api_a.get("/v1/graph/symbol", params={"repo": repo, "name": f"open_{mb}_ledger"})
    assert symbol.status_code == 404
    with connect(endpoints.postgres_dsn) as conn:
        owners = conn.execute(
            "SELECT tenant_id FROM repositories WHERE name = %s ORDER BY tenant_id", (repo,)
        ).fetchall()
    assert sorted(t for (t,) in owners) == sorted([a.name, b.name])
