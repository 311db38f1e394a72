"""Helpers of the worker end-to-end tests: the corpus, and jobs through the API."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from config.endpoints import Endpoints
from pipeline.adapters.postgres.connect import connect


def corpus() -> Path:
    spec = importlib.util.find_spec("pathspec")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def new_content(tree: Path, marker: str) -> None:
    """A comment line of ``marker`` appended to every ``.py`` file of ``tree``: content the
    embedding cache has never seen, so that every file goes through the embed queue (a
    file whose every chunk the cache holds goes from the chunk stage straight to write)."""
    for path in tree.rglob("*.py"):
        with path.open("a") as handle:
            handle.write(f"\n# {marker}\n")


def enqueue(api: httpx.Client, **body: Any) -> str:
    response = api.post("/v1/jobs", json=body)
    assert response.status_code in (200, 202), response.text
    job_id: str = response.json()["job_id"]
    return job_id


def wait(api: httpx.Client, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = api.get(f"/v1/jobs/{job_id}")
        if response.status_code == 503:  # a store is down (an outage test): ask again
            time.sleep(0.3)
            continue
        status = response.json()
        if status["status"] in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def searchable_chunks(endpoints: Endpoints, repo: str) -> list[tuple[str, str]]:
    """(path, file sha) of every chunk row that search can see: through the
    searchable snapshot's file list."""
    with connect(endpoints.postgres_dsn) as conn:
        rows = conn.execute(
            """
            SELECT c.path, c.file_sha256 FROM chunks c
            JOIN repositories r ON r.id = c.repository_id
            JOIN refs d ON d.repository_id = r.id AND d.name = r.default_ref
            JOIN files f ON f.snapshot_id = d.snapshot_id
                AND f.path = c.path AND f.content_sha256 = c.file_sha256
            WHERE r.tenant_id = 'default' AND r.name = %s
            """,
            (repo,),
        ).fetchall()
    return [(str(p), str(s)) for p, s in rows]


def until(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def tenant_secret_of(api: httpx.Client) -> bytes:
    """The webhook secret of the client's tenant (deliveries are signed with it, never
    with the service's master secret)."""
    answer = api.get("/v1/webhooks/secret")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["secret"]).encode()
