"""``GET /v1/jobs`` filters by status and pages: ``status``, ``limit``, ``offset`` and the
``next_offset`` of the answer; a bad value is a 422 that names the parameter.

The API runs in-process on the session stack's PostgreSQL, with its Redis pointed at a
database no worker consumes, so that the jobs stay queued until the test cancels them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from devstack.stack import Stack
from tests.api.idle import idle_api as idle

IDLE_DB = 13  # no worker of the session stack reads this database
JOBS = 5


@pytest.fixture(scope="module")
def idle_api(stack: Stack) -> Iterator[TestClient]:
    with idle(stack, db=IDLE_DB, queue_bound_ingest=100) as api:
        yield api


@pytest.fixture(scope="module")
def made(idle_api: TestClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Five jobs of one new repository, newest first; the 2nd and 4th cancelled."""
    repo = f"list-{uuid.uuid4().hex[:8]}"
    ids = []
    for i in range(JOBS):
        source: Path = tmp_path_factory.mktemp("src")
        (source / "a.py").write_text(f"def a():\n    return {i}\n")  # a commit of its own
        created = idle_api.post("/v1/jobs", json={"source": str(source), "repo": repo})
        assert created.status_code == 202, created.text
        ids.append(created.json()["job_id"])
    newest = ids[::-1]
    for job_id in (newest[1], newest[3]):
        assert idle_api.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    return {"repo": repo, "newest": newest}


def listed(api: TestClient, **params: Any) -> dict[str, Any]:
    answer = api.get("/v1/jobs", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def ids(body: dict[str, Any]) -> list[str]:
    return [job["job_id"] for job in body["jobs"]]


def test_the_status_filter_keeps_the_jobs_of_those_statuses(
    idle_api: TestClient, made: dict[str, Any]
) -> None:
    repo, newest = made["repo"], made["newest"]
    assert ids(listed(idle_api, repo=repo, status="cancelled")) == [newest[1], newest[3]]
    assert ids(listed(idle_api, repo=repo, status="queued")) == [newest[0], newest[2], newest[4]]
    both = listed(idle_api, repo=repo, status="queued, cancelled,,queued")
    assert ids(both) == newest
    assert ids(listed(idle_api, repo=repo, status="done")) == []
    assert ids(listed(idle_api, repo=repo, status="")) == newest  # empty: any status


def test_pages_follow_next_offset_until_it_is_null(
    idle_api: TestClient, made: dict[str, Any]
) -> None:
    repo, newest = made["repo"], made["newest"]
    seen: list[str] = []
    offsets = []
    offset: int | None = 0
    while offset is not None:
        body = listed(idle_api, repo=repo, limit=2, offset=offset)
        assert body["offset"] == offset and body["limit"] == 2
        offsets.append(offset)
        seen += ids(body)
        offset = body["next_offset"]
    assert seen == newest and offsets == [0, 2, 4]
    # a page that ends exactly at the last job has no next one
    assert listed(idle_api, repo=repo, limit=5)["next_offset"] is None
    assert listed(idle_api, repo=repo, limit=4)["next_offset"] == 4
    assert ids(listed(idle_api, repo=repo, offset=50)) == []
    paged = listed(idle_api, repo=repo, status="queued", limit=1, offset=1)
    assert ids(paged) == [newest[2]] and paged["next_offset"] == 2


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"status": "queued,sleeping"}, "status: 'sleeping' is not one of queued, running"),
        ({"status": "DONE"}, "status: 'DONE'"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "two"}, "offset"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
    ],
)
def test_a_bad_filter_or_page_is_a_422_naming_the_parameter(
    idle_api: TestClient, params: dict[str, str], named: str
) -> None:
    answer = idle_api.get("/v1/jobs", params=params)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    text = detail if isinstance(detail, str) else " ".join(str(e["loc"]) for e in detail)
    assert named in text, detail


def test_a_hostile_status_is_not_echoed_whole(idle_api: TestClient) -> None:
    answer = idle_api.get("/v1/jobs", params={"status": "<script>" + "x" * 150})
    assert answer.status_code == 422
    assert len(answer.json()["detail"]) < 120
