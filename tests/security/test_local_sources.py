"""A tenant cannot index what the service's workers can read outside the allowed roots.

On the session stack (real API and workers; the test stack allows ``/tmp``, where its own
data folder also lives): ``/etc``, the stack's data folder, its secrets file, an
uploaded archive, a ``..`` path, a symlink out of the allowed root and ``file://`` URLs
of each are refused with a 4xx naming the source, a dry run included (so it cannot
probe the workers' disks either), and the tenant ends with no job and no repository.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from config.settings import QuarrySettings
from tests.security.helpers import Tenant, index, wait

pytestmark = pytest.mark.timeout(180)


def hostile_sources(data_dir: Path, links: Path) -> list[str]:
    (links / "to-etc").symlink_to("/etc")
    (links / "to-stack").symlink_to(data_dir / "stack")
    (links / "to-data").symlink_to(data_dir)
    return [
        "/etc",
        "/",
        "/root",
        "/proc/self",
        str(data_dir),
        str(data_dir / "stack"),
        str(data_dir / "stack" / "secrets.json"),
        str(data_dir.parent),  # holds the data folder
        str(data_dir / "uploads" / f"{uuid.uuid4()}.tar.gz"),
        str(links / "to-etc"),
        str(links / "to-stack"),
        str(links / "to-data" / "logs"),
        str(links / ".." / ".." / "etc"),
        "/tmp/../etc",
        "file:///etc",
        f"file://{data_dir}/stack",
        f"file://{links}/to-stack",
        f"file://{links}/%2e%2e/%2e%2e/etc",
    ]


def test_hostile_local_sources_are_4xx_and_nothing_is_indexed(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    stack_settings: QuarrySettings,
    tmp_path: Path,
) -> None:
    api = client_for(new_tenant("paths"))
    refused = hostile_sources(stack_settings.data_dir, tmp_path)
    for source in refused:
        for params in ({}, {"dry_run": "true"}):
            response = api.post("/v1/jobs", params=params, json={"source": source, "repo": "r"})
            assert 400 <= response.status_code < 500, (source, params, response.text)
            detail = response.json()["detail"]
            assert "source" in detail and source in detail, detail
            assert "s3cret" not in detail and "api_token" not in detail
    assert api.get("/v1/jobs").json()["jobs"] == []
    assert api.get("/v1/repos").json()["repos"] == []


def test_a_missing_path_outside_the_roots_reads_like_an_existing_one(
    new_tenant: Callable[[str], Tenant], client_for: Callable[[Tenant], httpx.Client]
) -> None:
    """A dry run cannot tell which folders exist on the workers outside the roots."""
    api = client_for(new_tenant("probe"))
    answers = []
    for folder in ("/etc/ssl", "/etc/no-such-folder-xyz"):
        response = api.post(
            "/v1/jobs", params={"dry_run": "true"}, json={"source": folder, "repo": "r"}
        )
        assert response.status_code == 422, response.text
        answers.append(response.json()["detail"].replace(folder, "PATH"))
    assert answers[0] == answers[1]


def test_a_folder_under_an_allowed_root_is_still_indexed(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    tiny_repo: Callable[[str], Path],
) -> None:
    api = client_for(new_tenant("ok"))
    status = index(api, source=str(tiny_repo("allowedroot")), repo="allowed")
    assert status["files"]["total"] == 2


def test_an_uploaded_archive_is_indexed_from_the_upload_store_not_the_apis_disk(
    new_tenant: Callable[[str], Tenant],
    client_for: Callable[[Tenant], httpx.Client],
    stack_settings: QuarrySettings,
    tiny_repo: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    """The job names its upload (``upload:<id>``), not a server path; the ingest worker
    reads it from PostgreSQL, so nothing is left in the API's data folder; another
    tenant cannot name that upload as a source."""
    import tarfile

    owner, other = client_for(new_tenant("upload")), client_for(new_tenant("thief"))
    folder = tiny_repo("uploaded")
    archive = tmp_path / "uploaded.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="uploaded-1.0")
    response = owner.post(
        "/v1/jobs/archive",
        params={"repo": "uploaded"},
        content=archive.read_bytes(),
        headers={"Content-Type": "application/gzip"},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    status = wait(owner, job_id)
    assert status["status"] == "done", status
    assert status["source"].startswith("upload:"), status["source"]
    assert status["files"]["total"] == 2
    uploads = stack_settings.data_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    stolen = other.post("/v1/jobs", json={"source": status["source"], "repo": "stolen"})
    if stolen.status_code == 202:  # parsed as an scp-like git URL: the clone must fail
        final = wait(other, stolen.json()["job_id"])
        assert final["status"] == "failed", final
    else:
        assert 400 <= stolen.status_code < 500, stolen.text
    repos = other.get("/v1/repos").json()["repos"]
    assert all(r["searchable_commit"] is None for r in repos if r["name"] == "stolen")
