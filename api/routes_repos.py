"""``/v1/repos``: the tenant's repositories and what is searchable of each.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from api.auth import AdminTenant, ReadTenant, State, WriteTenant
from api.routes_jobs import checked_source, submit_job
from pipeline import flow
from pipeline.errors import TransientError
from pipeline.jobs import Job, JobRequest
from pipeline.models import RepoRef
from pipeline.stages.deletion import begin_deletion
from pipeline.stages.reconcile import Stores, reconcile

log = logging.getLogger("quarry.api")
router = APIRouter(prefix="/v1/repos", tags=["repositories"])
# Not under /v1/repos: a repository's name may hold "/", so /v1/repos/deletions/{id}
# would also be the path of a repository named "deletions/{id}".
deletions_router = APIRouter(prefix="/v1/repo-deletions", tags=["repositories"])


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


class DeletionQueued(BaseModel):
    """A repository deletion was recorded (or is already in progress)."""

    deletion_id: str
    status_url: str
    created: bool


class DeletionStatus(BaseModel):
    """A repository deletion: queued, running (``stage`` says where), done or failed;
    ``counters``: what each stage removed so far (chunks, files, graph_nodes, blobs,
    cache_rows ...)."""

    deletion_id: str
    repo: str
    status: str
    stage: str
    counters: dict[str, int]
    error: str | None
    created_at: float
    finished_at: float | None


@router.delete("/{name:path}", status_code=202, response_model=DeletionQueued)
def delete_repo(name: str, tenant: AdminTenant, state: State, http: Request) -> DeletionQueued:
    """Delete the repository from every store (rows, vectors, graph, and the source blobs
    and cached embeddings no other repository holds), in the background. At once the
    repository leaves listings and search, and its new jobs are refused (409).
    202 with the deletion's id and status URL (the same deletion while one is in
    progress); 404 for an unknown repository; 409 naming the job while one of its jobs
    is queued or running (cancel it first, or wait)."""

    def send(deletion_id: str) -> None:
        try:
            state.client.send(flow.DELETE_REPO_TASK, {"deletion_id": deletion_id})
        except TransientError as exc:
            # Recorded already: the sweep sends a deletion that does not progress.
            log.warning("deletion %s not sent now (the sweep will): %s", deletion_id, exc)

    deletion, created = begin_deletion(state.deletions, RepoRef(tenant, name), send)
    return DeletionQueued(
        deletion_id=deletion.deletion_id,
        status_url=str(http.url_for("get_repo_deletion", deletion_id=deletion.deletion_id)),
        created=created,
    )


@deletions_router.get("/{deletion_id}", response_model=DeletionStatus)
def get_repo_deletion(deletion_id: str, tenant: ReadTenant, state: State) -> DeletionStatus:
    """A repository deletion's status; 404 for an unknown id or another tenant's."""
    found = state.deletions.get(deletion_id, tenant)
    if found is None:
        raise HTTPException(404, f"deletion {deletion_id!r} not found")
    return DeletionStatus(**found.as_dict())


@router.get("/{name:path}")
def get_repo(name: str, tenant: ReadTenant, state: State) -> dict[str, Any]:
    """One repository (names may contain `/`)."""
    found = state.jobs.snapshots.repository(tenant, name)
    if found is None:
        raise HTTPException(404, f"repository {name!r} not found")
    return found
