"""``/v1/jobs``: enqueue, follow, list and cancel indexing jobs.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api import quotas
from api.auth import ReadTenant, State, WriteTenant
from pipeline.errors import InvalidInputError
from pipeline.jobs import Job, JobRequest, JobSource, JobStatus, SourceKind, job_status
from pipeline.models import RepoRef
from pipeline.ports import UploadStore
from pipeline.refs import index_ref_name
from pipeline.sources.archive_heads import HEAD_BYTES, archive_head_problem
from pipeline.sources.locations import parse_source, repo_name_from
from pipeline.sources.uploads import PART_BYTES, upload_location
from pipeline.stages.indexing import cancel, live_job
from pipeline.stages.ingest import dry_run, submit
from pipeline.webhooks.addresses import check_callback_destination

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
UPLOAD_CHUNK_BYTES = 1 << 20


class JobCreate(BaseModel):
    """A job: a source (a local path the workers can read, or a git URL), optionally a
    ref, the repository name (default: from the source), the commit, a callback URL and
    an idempotency key.

    ``ref`` is the ref the job publishes to (``refs/heads/x`` and ``x`` are the branch
    ``x``; a full commit id names no ref: the default ref), and for a git source also
    what is fetched. Without it the job publishes to the repository's default ref, which
    is fixed when the repository is created: ``default_ref``, else ``ref``, else main."""

    source: str = Field(min_length=1, max_length=4096)
    repo: str | None = Field(None, max_length=200)
    ref: str | None = Field(None, max_length=256)
    default_ref: str | None = Field(None, max_length=256)
    commit: str | None = Field(None, max_length=100)
    callback_url: str | None = Field(None, max_length=2048)
    idempotency_key: str | None = Field(None, max_length=200)


class JobCreated(BaseModel):
    job_id: str
    status_url: str
    created: bool


def checked_callback(state: State, url: str | None) -> str | None:
    """The callback URL; a malformed one, or one whose host is an address that the
    settings refuse deliveries to (loopback, private, link-local ... in any notation),
    is bad input naming ``callback_url``. Names are checked again at each delivery."""
    if not url:
        return None
    allow = frozenset(state.settings.webhook_allow_addresses)
    try:
        return check_callback_destination(url, allow)
    except InvalidInputError as exc:
        raise InvalidInputError(f"callback_url: {exc}") from None


def _request(state: State, tenant: str, body: JobCreate, source: JobSource) -> JobRequest:
    name = body.repo or repo_name_from(source)
    return JobRequest(
        repo=RepoRef(tenant, name),
        source=source,
        commit=body.commit or None,
        callback_url=checked_callback(state, body.callback_url),
        idempotency_key=body.idempotency_key or None,
        ref_name=index_ref_name(body.ref),
        default_ref=None if body.default_ref is None else index_ref_name(body.default_ref),
    )


def checked_source(state: State, location: str, ref: str | None) -> JobSource:
    """The parsed source; a local path (folder, archive, ``file://``) must be absolute
    and under a root the operator allows, never the service's own data or secrets
    (:mod:`pipeline.sources.policy`)."""
    source = parse_source(location, ref, allow_file_urls=state.settings.source_allow_file_urls)
    return state.source_policy.check_submission(source)


def submit_job(state: State, request: JobRequest) -> tuple[Job, bool]:
    """Create (or find) the job and admit its ingest task (QueueFullError: 429; a
    tenant's quota: QuotaExceededError, 429 or 403)."""
    client = state.client

    def admit(task_name: str, kwargs: Mapping[str, Any]) -> None:
        quotas.admit_job(state, request.repo.tenant, str(kwargs["job_id"]))  # api/quotas.py
        client.send(task_name, dict(kwargs))

    return submit(state.jobs, request, admit=admit)


def _enqueue(state: State, request: JobRequest, response: Response, http: Request) -> JobCreated:
    job, created = submit_job(state, request)
    response.status_code = 202 if created else 200
    return JobCreated(
        job_id=job.job_id,
        status_url=str(http.url_for("get_job", job_id=job.job_id)),
        created=created,
    )


# A dry run answers its estimate (a dict), not a JobCreated: both are valid answers.
@router.post("", status_code=202, response_model=JobCreated | dict[str, Any])
def create_job(
    body: JobCreate,
    *,
    tenant: WriteTenant,
    state: State,
    response: Response,
    http: Request,
    dry_run_: Annotated[bool, Query(alias="dry_run")] = False,
) -> Any:
    """Enqueue a job (202), or return the existing one for the same idempotency key or
    repository + commit (200). ``?dry_run=true``: what it would do (200), enqueueing nothing.
    429 with Retry-After when the ingest queue is full or the tenant's `concurrent_jobs` or
    `files_per_day` quota refuses the job, 403 when its `stored_chunks` quota does (the
    body names the quota and its limit)."""
    request = _request(state, tenant, body, checked_source(state, body.source, body.ref))
    if dry_run_:
        response.status_code = 200
        with tempfile.TemporaryDirectory(dir=_scratch(state)) as workdir:
            return dry_run(
                state.jobs,
                request,
                fetcher=state.fetcher,
                workdir=Path(workdir),
                max_file_bytes=state.settings.chunk_max_file_bytes,
            )
    return _enqueue(state, request, response, http)


@router.post("/archive", status_code=202, response_model=JobCreated)
async def create_job_from_archive(
    http: Request,
    *,
    tenant: WriteTenant,
    state: State,
    response: Response,
    repo: Annotated[str, Query(min_length=1, max_length=200)],
    ref: Annotated[
        str | None, Query(max_length=256, description="The ref it publishes to.")
    ] = None,
    commit: Annotated[str | None, Query(max_length=100)] = None,
    callback_url: Annotated[str | None, Query(max_length=2048)] = None,
    idempotency_key: Annotated[str | None, Query(max_length=200)] = None,
) -> JobCreated:
    """Enqueue a job for an uploaded .tar.gz (the request body, `application/gzip`). A
    body that does not start a .tar.gz (a zip, a bare tar, text) is a 422 naming it.

    The body streams into the upload store in parts (pipeline.sources.uploads), where
    the ingest worker of any host reads it; nothing lands on the API's disk."""
    checked_callback(state, callback_url)  # before reading an upload it would refuse
    index_ref_name(ref)  # and a ref it would refuse
    await run_in_threadpool(quotas.precheck, state, tenant)  # and a quota that refuses
    limit = state.settings.source_max_archive_bytes
    store = state.uploads
    upload_id = await run_in_threadpool(store.begin, tenant)
    try:
        size, head = await _stream_parts(http, store, upload_id, limit)
        if size == 0:
            raise InvalidInputError("archive: the request body is empty")
        problem = archive_head_problem(head, whole=size <= len(head))
        if problem is not None:
            raise InvalidInputError(f"archive: {problem}")
        await run_in_threadpool(store.finish, upload_id, size)
        body = JobCreate(
            source=upload_location(upload_id),
            repo=repo,
            ref=ref,
            commit=commit,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )
        source = JobSource(SourceKind.ARCHIVE, upload_location(upload_id))
        created = _enqueue(state, _request(state, tenant, body, source), response, http)
    except BaseException:
        await run_in_threadpool(store.discard, upload_id)
        raise
    if not created.created:  # the job existed (idempotency key): this upload is not used
        await run_in_threadpool(store.discard, upload_id)
    return created


async def _stream_parts(
    http: Request, store: UploadStore, upload_id: str, limit: int
) -> tuple[int, bytes]:
    """The request body into ``store`` in parts of PART_BYTES; its size (413 past limit)
    and its first HEAD_BYTES, for the format check."""
    buffer = bytearray()
    head = b""
    size = part_no = 0
    async for piece in http.stream():
        size += len(piece)
        if size > limit:
            raise HTTPException(413, f"archive: larger than {limit} bytes")
        if len(head) < HEAD_BYTES:
            head += piece[: HEAD_BYTES - len(head)]
        buffer += piece
        while len(buffer) >= PART_BYTES:
            await run_in_threadpool(store.add_part, upload_id, part_no, bytes(buffer[:PART_BYTES]))
            del buffer[:PART_BYTES]
            part_no += 1
    if buffer:
        await run_in_threadpool(store.add_part, upload_id, part_no, bytes(buffer))
    return size, head


@router.get("/{job_id}", name="get_job")
def get_job(job_id: str, tenant: ReadTenant, state: State) -> dict[str, Any]:
    """The job's status: counters, percent, ETA, errors and webhook deliveries."""
    ctx = state.jobs
    job = ctx.jobs.get(job_id, tenant)
    if job is None:
        raise HTTPException(404, f"job {job_id!r} not found")
    return job_status(live_job(ctx, job), time.time())


def listed_statuses(value: str | None) -> tuple[JobStatus, ...]:
    """``status=queued,running`` as JobStatus values (empty: any); an unknown one is
    bad input (422) that names the parameter and the statuses there are."""
    if value is None:
        return ()
    wanted: list[JobStatus] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            wanted.append(JobStatus(part))
        except ValueError:
            known = ", ".join(s.value for s in JobStatus)
            raise InvalidInputError(f"status: {part[:40]!r} is not one of {known}") from None
    return tuple(dict.fromkeys(wanted))


@router.get("")
def list_jobs(
    *,
    tenant: ReadTenant,
    state: State,
    repo: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[
        str | None, Query(max_length=200, description="Statuses, comma-separated.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The tenant's jobs newest first, optionally of one repository and of some statuses;
    a page of ``limit`` after ``offset`` newer ones. ``next_offset`` is the next page's
    offset, null on the last page."""
    ctx, now = state.jobs, time.time()
    statuses = listed_statuses(status)
    # one more than asked for says whether a next page exists, without a count
    jobs = ctx.jobs.list(tenant, repo, limit + 1, statuses=statuses, offset=offset)
    return {
        "jobs": [job_status(live_job(ctx, j), now) for j in jobs[:limit]],
        "offset": offset,
        "limit": limit,
        "next_offset": offset + limit if len(jobs) > limit else None,
    }


@router.delete("/{job_id}")
def cancel_job(job_id: str, tenant: WriteTenant, state: State) -> dict[str, Any]:
    """Cancel a job: no new work starts, the previous snapshot stays searchable. A job
    already finished is returned as it is."""
    ctx = state.jobs
    job = ctx.jobs.get(job_id, tenant)
    if job is None:
        raise HTTPException(404, f"job {job_id!r} not found")
    if not job.status.terminal:
        cancel(ctx, job)
        job = ctx.jobs.get(job_id, tenant) or job
    return job_status(live_job(ctx, job), time.time())


def _scratch(state: State) -> Path:
    path = state.settings.data_dir / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path
