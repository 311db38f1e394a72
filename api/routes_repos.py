"""``/v1/repos``: the tenant's repositories and what is searchable of each.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from api.auth import ReadTenant, State, WriteTenant
from api.routes_jobs import checked_source, submit_job
from pipeline.jobs import Job, JobRequest
from pipeline.models import RepoRef
from pipeline.stages.reconcile import Stores, reconcile

router = APIRouter(prefix="/v1/repos", tags=["repositories"])


@router.get("")
def list_repos(tenant: ReadTenant, state: State) -> dict[str, Any]:
    """Each repository with its searchable commit, files and chunks."""
    return {"repos": state.jobs.snapshots.repositories(tenant)}


class ReconcileRequest(BaseModel):
    """``dry_run``: report only. ``all``: re-index every file, not only those a store
    lacks. ``source``/``ref``: where to read files (default: the last done job's)."""

    dry_run: bool = False
    all: bool = False
    source: str | None = Field(None, min_length=1, max_length=4096)
    ref: str | None = Field(None, max_length=256)


@router.post("/{name:path}/reconcile")
def reconcile_repo(
    name: str, body: ReconcileRequest, tenant: WriteTenant, state: State, http: Request
) -> dict[str, Any]:
    """Compare the searchable snapshot with both stores; unless ``dry_run``, delete
    ghost rows and nodes and enqueue a job that re-indexes the files a store lacks.
    404 for an unknown repository, 409 while one of its jobs is in progress."""
    jobs = state.jobs
    source = None if body.source is None else checked_source(state, body.source, body.ref)

    def submit(request: JobRequest) -> Job:
        return submit_job(state, request)[0]

    outcome = reconcile(
        Stores(jobs.jobs, jobs.snapshots, state.vectors, state.graph),
        RepoRef(tenant, name),
        repair=not body.dry_run,
        submit=submit,
        source=source,
        everything=body.all,
    )
    result = outcome.as_dict()
    if outcome.job is not None:
        result["status_url"] = str(http.url_for("get_job", job_id=outcome.job.job_id))
    return result


@router.get("/{name:path}")
def get_repo(name: str, tenant: ReadTenant, state: State) -> dict[str, Any]:
    """One repository (names may contain `/`)."""
    found = state.jobs.snapshots.repository(tenant, name)
    if found is None:
        raise HTTPException(404, f"repository {name!r} not found")
    return found
