"""Jobs end to end on the session stack: the API, real Celery workers, real stores.

The corpus is a real package nobody here wrote (``pathspec``, a dependency, copied from
the environment), so that chunking, the graph and the counters meet real code.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from config.endpoints import Endpoints, read_stack_secrets
from devstack.services import GraphService
from devstack.stack import Stack
from pipeline.adapters.neo4j.graph_store import Neo4jGraphStore
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.models import RepoRef
from pipeline.webhooks.events import verify
from tests.workers.jobs_api import enqueue, searchable_chunks, tenant_secret_of, wait

pytestmark = pytest.mark.timeout(300)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_job_indexes_a_real_package_and_its_counters_match_the_stores(
    api: httpx.Client,
    tree: Path,
    vectors: PgVectorStore,
    graph: Neo4jGraphStore,
    endpoints: Endpoints,
) -> None:
    repo = f"pathspec-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(api, source=str(tree), repo=repo)
    status = wait(api, job_id)
    assert status["status"] == "done", status
    files, chunks = status["files"], status["chunks"]
    py_files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.py"))
    assert files["total"] >= len(py_files)
    assert files["failed"] == 0
    assert files["written"] + files["skipped"] == files["total"]
    assert status["percent"] == 100.0
    assert status["finished_at"] and status["started_at"]

    ref = RepoRef("default", repo)
    keys = vectors.chunk_keys(ref)
    assert len(keys) == chunks["total"] > 0
    assert chunks["embedded"] + chunks["cached"] == chunks["total"]
    # Every stored chunk is of the current version of its file.
    assert {(p, s) for p, s, _ in keys} <= {(p, _sha(tree / p)) for p in py_files} | {
        (p.relative_to(tree).as_posix(), _sha(p)) for p in tree.rglob("*") if p.is_file()
    }
    stored_files = graph.file_versions(ref)
    assert {p for p, _s, _ in keys} <= set(stored_files)
    assert graph.chunk_ids(ref) == {cid for _p, _s, cid in keys}
    assert len(searchable_chunks(endpoints, repo)) == len(keys)

    repos = api.get(f"/v1/repos/{repo}").json()
    assert repos["chunks"] == len(keys)


def test_reindex_touches_only_changed_added_and_deleted_files(
    api: httpx.Client,
    tree: Path,
    vectors: PgVectorStore,
    graph: Neo4jGraphStore,
    endpoints: Endpoints,
) -> None:
    repo = f"pathspec-{uuid.uuid4().hex[:8]}"
    first = wait(api, enqueue(api, source=str(tree), repo=repo))
    assert first["status"] == "done", first
    ref = RepoRef("default", repo)

    changed = tree / "util.py"
    changed.write_text(changed.read_text() + "\n\ndef brand_new_helper(x):\n    return x * 2\n")
    (tree / "added_module.py").write_text("def added_function():\n    return 'added'\n")
    deleted = "pattern.py"
    (tree / deleted).unlink()

    second = wait(api, enqueue(api, source=str(tree), repo=repo))
    assert second["status"] == "done", second
    files = second["files"]
    assert files["todo"] == 2  # util.py and added_module.py
    assert files["deleted"] == 1
    assert files["written"] == 2
    assert files["skipped_by_reason"]["unchanged"] == first["files"]["todo"] - 2
    # Unchanged chunks of the changed file come from the cache; no new vectors elsewhere.
    assert second["chunks"]["embedded"] + second["chunks"]["cached"] == second["chunks"]["total"]

    keys = vectors.chunk_keys(ref)
    paths = {p for p, _s, _ in keys}
    assert deleted not in paths
    assert "added_module.py" in paths
    assert {s for p, s, _ in keys if p == "util.py"} == {_sha(changed)}
    assert deleted not in graph.file_versions(ref)
    assert graph.file_versions(ref)["util.py"] == _sha(changed)
    assert len(searchable_chunks(endpoints, repo)) == len(keys)


def test_same_repository_and_commit_or_idempotency_key_return_the_same_job(
    api: httpx.Client, tree: Path
) -> None:
    repo = f"same-{uuid.uuid4().hex[:8]}"
    first = api.post("/v1/jobs", json={"source": str(tree), "repo": repo, "commit": "abc123"})
    again = api.post("/v1/jobs", json={"source": str(tree), "repo": repo, "commit": "abc123"})
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["job_id"] == again.json()["job_id"]
    key = uuid.uuid4().hex
    one = api.post("/v1/jobs", json={"source": str(tree), "repo": repo, "idempotency_key": key})
    two = api.post("/v1/jobs", json={"source": str(tree), "repo": repo, "idempotency_key": key})
    assert one.json()["job_id"] == two.json()["job_id"] != first.json()["job_id"]
    wait(api, first.json()["job_id"])
    wait(api, one.json()["job_id"])


class _Receiver(BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append((dict(self.headers.items()), body))
        code = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_is_signed_and_a_500_is_retried(
    api: httpx.Client, tree: Path, endpoints: Endpoints
) -> None:
    _Receiver.answers, _Receiver.received = [500], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job_id = enqueue(
            api, source=str(tree), repo=f"hook-{uuid.uuid4().hex[:8]}", callback_url=url
        )
        assert wait(api, job_id)["status"] == "done"
        deadline = time.monotonic() + 30
        while len(_Receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Receiver.received) == 2
    for headers, body in _Receiver.received:
        verify(tenant_secret_of(api), headers, body, now=time.time())
        event = json.loads(body)
        assert event["event"] == "job.done" and event["job"]["job_id"] == job_id
    deliveries = api.get(f"/v1/jobs/{job_id}").json()["webhooks"]
    assert [d["outcome"] for d in deliveries] == ["retrying", "delivered"]
    assert deliveries[0]["status_code"] is None and deliveries[1]["status_code"] == 200


def test_tenants_see_only_their_own_jobs_and_repositories(
    api: httpx.Client, tree: Path, endpoints: Endpoints
) -> None:
    repo = f"tenant-a-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(api, source=str(tree), repo=repo)
    store = PgTokenStore(endpoints.postgres_dsn, pool_size=1)
    try:
        other = store.create(f"tenant-b-{uuid.uuid4().hex[:6]}")
    finally:
        store.close()
    with httpx.Client(
        base_url=endpoints.api_url, headers={"Authorization": f"Bearer {other}"}
    ) as b:
        assert b.get(f"/v1/jobs/{job_id}").status_code == 404
        assert b.delete(f"/v1/jobs/{job_id}").status_code == 404
        assert b.get("/v1/jobs").json()["jobs"] == []
        assert b.get(f"/v1/repos/{repo}").status_code == 404
        assert all(r["name"] != repo for r in b.get("/v1/repos").json()["repos"])
    with httpx.Client(base_url=endpoints.api_url) as anonymous:
        assert anonymous.get(f"/v1/jobs/{job_id}").status_code == 401
        assert anonymous.get("/v1/repos").status_code == 401
    wait(api, job_id)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"source": "/tmp/quarry-no-such-folder-anywhere"}, "does not exist"),
        ({"source": "relative/path"}, "absolute"),
        ({"source": "ftp://example.com/x.git"}, "ftp"),
        ({"source": "ext::sh -c touch% /tmp/pwned"}, "ext::"),
        ({"source": "{src}", "repo": "x", "callback_url": "not a url"}, "not a url"),
        ({"source": "{src}", "repo": "../etc"}, "repository name"),
    ],
)
def test_bad_job_requests_are_4xx_naming_the_input(
    api: httpx.Client, body: dict[str, Any], fragment: str, tmp_path: Path
) -> None:
    body = {k: str(tmp_path) if v == "{src}" else v for k, v in body.items()}
    response = api.post("/v1/jobs", json=body)
    if response.status_code == 202:  # a path that exists only as a source check at ingest
        status = wait(api, response.json()["job_id"])
        assert status["status"] == "failed" and fragment in status["message"]
        return
    assert 400 <= response.status_code < 500, response.text
    assert fragment in response.json()["detail"]


def test_unknown_job_is_404(api: httpx.Client) -> None:
    assert api.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert api.get("/v1/jobs/not-a-uuid").status_code == 404
    assert api.delete(f"/v1/jobs/{uuid.uuid4()}").status_code == 404


def test_graph_down_the_job_says_it_waits_on_the_graph_and_completes_when_it_returns(
    api: httpx.Client,
    tree: Path,
    stack: Stack,
    endpoints: Endpoints,
    graph: Neo4jGraphStore,
    vectors: PgVectorStore,
) -> None:
    secrets = read_stack_secrets(stack.settings)
    assert secrets is not None
    service = GraphService(stack.settings, stack.layout, endpoints, secrets)
    repo = f"graph-outage-{uuid.uuid4().hex[:8]}"
    service.stop()
    try:
        job_id = enqueue(api, source=str(tree), repo=repo)
        deadline = time.monotonic() + 150
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = api.get(f"/v1/jobs/{job_id}").json()
            if status["waiting_on"] or status["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert status["status"] == "running", status
        (store_wait,) = status["waiting_on"]
        assert store_wait["store"] == "graph"
        assert "circuit breaker open" in store_wait["reason"]
        assert status["files"]["failed"] == 0
    finally:
        stack.up()  # starts the graph server again, as a restart policy would
    final = wait(api, job_id)
    assert final["status"] == "done", final
    assert final["waiting_on"] == []
    ref = RepoRef("default", repo)
    keys = vectors.chunk_keys(ref)
    assert graph.chunk_ids(ref) == {cid for _p, _s, cid in keys}
    assert {p for p, _s, _ in keys} <= set(graph.file_versions(ref))
