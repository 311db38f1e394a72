"""Fair sharing and quotas end to end on the session stack (real workers, real stores):
a job many times its window (the test stack's is 16 files) is indexed whole through
released slices; a job past its tenant's files per day fails naming the quota at ingest
and publishes nothing, while one that fits is indexed and charged."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.endpoints import Endpoints
from devstack.stack import Stack
from pipeline.adapters.postgres.quota_store import PgQuotaStore
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.quotas import default_limits
from tests.workers.jobs_api import enqueue, searchable_chunks, wait

pytestmark = pytest.mark.timeout(300)


def _tree(root: Path, files: int) -> Path:
    root.mkdir()
    for n in range(files):
        (root / f"m{n:03d}.py").write_text(f"def f{n}(x):\n    return x + {n}\n")
    return root


@pytest.fixture
def tenant_api(endpoints: Endpoints) -> Iterator[tuple[str, httpx.Client]]:
    name = f"fair-{uuid.uuid4().hex[:8]}"
    with PgTokenStore(endpoints.postgres_dsn) as tokens:
        token = tokens.create(name, "fairness e2e")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=endpoints.api_url, headers=headers, timeout=30) as client:
        yield name, client


def test_a_job_many_times_its_window_is_indexed_whole(
    api: httpx.Client, tmp_path: Path, endpoints: Endpoints, stack: Stack
) -> None:
    assert stack.settings.job_window_files == 16
    repo = f"window-{uuid.uuid4().hex[:8]}"
    job_id = enqueue(api, source=str(_tree(tmp_path / "big", 70)), repo=repo)
    status = wait(api, job_id)
    assert status["status"] == "done", status
    assert status["files"]["written"] == 70 and status["files"]["failed"] == 0
    assert {p for p, _ in searchable_chunks(endpoints, repo)} == {f"m{n:03d}.py" for n in range(70)}
    assert "window." not in str(status)  # the window's bookkeeping is not shown


def test_a_job_past_files_per_day_fails_at_ingest_naming_it_and_publishes_nothing(
    tenant_api: tuple[str, httpx.Client], tmp_path: Path, endpoints: Endpoints, stack: Stack
) -> None:
    name, client = tenant_api
    with PgQuotaStore(endpoints.postgres_dsn) as quotas:
        quotas.set_limits(name, {"files_per_day": 8})
        refused = enqueue(client, source=str(_tree(tmp_path / "ten", 10)), repo="ten")
        status = wait(client, refused)
        assert status["status"] == "failed", status
        assert "files_per_day" in status["message"] and "limit 8" in status["message"]
        assert status["files"]["written"] == 0
        assert client.get("/v1/repos/ten").json()["searchable_commit"] is None  # none published
        assert quotas.status(name, default_limits(stack.settings)).usage.files_per_day == 0

        fits = enqueue(client, source=str(_tree(tmp_path / "six", 6)), repo="six")
        assert wait(client, fits)["status"] == "done"
        assert quotas.status(name, default_limits(stack.settings)).usage.files_per_day == 6
    # The headers follow within quota_status_cache_s (each API process keeps the status).
    deadline = time.monotonic() + stack.settings.quota_status_cache_s + 5
    seen = ""
    while time.monotonic() < deadline and seen != "2":
        seen = client.get("/v1/jobs").headers["X-Quota-Remaining-Files-Per-Day"]
        time.sleep(0.5)
    assert seen == "2"
