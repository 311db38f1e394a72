"""``quarry reconcile`` on the session stack: stores made to disagree on purpose, then
found and repaired through the API, real workers and both real stores."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.endpoints import Endpoints
from config.settings import child_environment
from devstack.stack import Stack
from pipeline.adapters.neo4j.driver import make_driver
from pipeline.adapters.neo4j.graph_store import Neo4jGraphStore
from pipeline.adapters.postgres.job_store import PgJobStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.jobs import JobRequest, JobSource, SourceKind
from pipeline.models import RepoRef
from tests.stackutil import run_quarry
from tests.workers.jobs_api import wait

pytestmark = pytest.mark.timeout(300)


def _quarry(stack: Stack, *args: str) -> Any:
    env = {k: v for k, v in child_environment(stack.settings).items() if k.startswith("QUARRY_")}
    return run_quarry(*args, env=env)


def test_stores_made_to_disagree_are_found_and_repaired(
    api: httpx.Client, tree: Path, stack: Stack, endpoints: Endpoints
) -> None:
    repo = f"reconcile-{uuid.uuid4().hex[:8]}"
    created = api.post("/v1/jobs", json={"source": str(tree), "repo": repo})
    assert created.status_code == 202, created.text
    assert wait(api, created.json()["job_id"])["status"] == "done"
    ref = RepoRef("default", repo)
    # A job in progress (a queued row no worker takes: a real job of this small tree can
    # be done before the next request) makes reconcile a 409 naming it; cancelled, not.
    with PgJobStore(endpoints.postgres_dsn, pool_size=1) as jobs:
        source = JobSource(SourceKind.PATH, str(tree))
        queued, _ = jobs.create(JobRequest(ref, source), job_id=uuid.uuid4().hex, commit="c" * 40)
    busy = api.post(f"/v1/repos/{repo}/reconcile", json={"dry_run": True})
    assert busy.status_code == 409, busy.text
    assert queued.job_id in busy.json()["detail"]
    assert api.delete(f"/v1/jobs/{queued.job_id}").json()["status"] == "cancelled"
    driver = make_driver(endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password)
    with PgVectorStore(endpoints.postgres_dsn, dimension=384) as vectors:
        graph = Neo4jGraphStore(driver, endpoints.neo4j_database)
        try:
            before_rows = vectors.chunk_keys(ref)
            before_nodes = graph.chunk_keys(ref)
            assert {(p, i) for p, _s, i in before_rows} == before_nodes
            by_path = sorted({p for p, _s, _i in before_rows})
            lost_rows, lost_node = by_path[0], by_path[1]
            vectors.delete_files(ref, [lost_rows])  # PostgreSQL loses a file's chunks
            graph.delete_files(ref, [lost_node])  # the graph loses another file

            checked = _quarry(stack, "reconcile", repo, "--dry-run", "--json")
            assert checked.returncode == 1, checked.stderr
            report = json.loads(checked.stdout)
            assert report["drift"]["vectors_missing"] == [lost_rows]
            assert report["drift"]["graph_missing"] == [lost_node]
            assert report["job_id"] is None
            assert vectors.chunk_keys(ref) != before_rows  # a dry run repairs nothing

            repaired = _quarry(stack, "reconcile", repo, "--wait", "--json")
            assert repaired.returncode == 0, repaired.stderr
            outcome = json.loads(repaired.stdout)
            job = api.get(f"/v1/jobs/{outcome['job_id']}").json()
            assert job["status"] == "done"
            assert job["files"]["written"] == 2
            assert job["chunks"]["embedded"] == 0  # unchanged content: from the cache

            assert vectors.chunk_keys(ref) == before_rows
            assert graph.chunk_keys(ref) == before_nodes
            again = _quarry(stack, "reconcile", repo, "--dry-run", "--json")
            assert again.returncode == 0, again.stderr
            assert json.loads(again.stdout)["drift"]["consistent"] is True
        finally:
            graph.close()


def test_reconcile_of_an_unknown_repository_is_a_404(api: httpx.Client) -> None:
    response = api.post("/v1/repos/no-such-repo/reconcile", json={"dry_run": True})
    assert response.status_code == 404
    assert "no-such-repo" in response.json()["detail"]
