"""Push webhooks: ``/v1/push-hooks`` (a tenant registers, lists and removes the hooks of
its repositories: admin scope) and ``/v1/hooks/{github,gitlab}/{hook_id}`` (where
GitHub and GitLab deliver push events: no token, the platforms cannot send one).

A delivery is checked in this order, and each refusal enqueues nothing and is written to
the audit log: an unknown hook (or one of the other platform) 404; a body past
``push_hook_max_body_bytes`` 413; a missing or wrong signature (GitHub's
``X-Hub-Signature-256``, HMAC-SHA256 of the raw body) or token (GitLab's
``X-Gitlab-Token``) 401; a body that is not a JSON object 400; a payload of another
repository than the hook's 403. Then: GitHub's ``ping`` 200; an event or ref push hooks
do not handle 202 ``ignored`` with the reason (2xx: the platform counts no failure);
a push indexes the ref at its commit (202 new job, 200 the job of a redelivery: the
delivery id is the job's idempotency key); a branch or tag deletion deletes the ref.
A full ingest queue answers 503 with Retry-After, not 429: GitLab disables a hook that
keeps answering 4xx, and neither platform resends on its own (redeliver from its page).

The clone URL is the registered one, never the payload's: a delivery chooses only the
ref and the commit.

Must not import: workers/, cli/, torch, celery.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api import audit
from api.auth import AdminTenant, State
from api.routes_jobs import checked_source, submit_job
from api.state import ApiState
from pipeline.credentials.scopes import best_scope
from pipeline.errors import (
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    QueueFullError,
)
from pipeline.jobs import JobRequest, JobSource, SourceKind, check_repo_name
from pipeline.models import RepoRef
from pipeline.push_hooks.events import (
    GITHUB_EVENT_HEADER,
    GITLAB_EVENT_HEADER,
    EventKind,
    ForeignRepositoryError,
    Ignored,
    PayloadError,
    PushAction,
    PushEvent,
    event_kind,
    payload_of,
    push_event,
)
from pipeline.push_hooks.hooks import (
    GITHUB_SIGNATURE_HEADER,
    GITLAB_TOKEN_HEADER,
    Platform,
    PushHook,
    check_platform,
    github_signed,
    gitlab_token_matches,
    hook_secret,
    is_hook_id,
    new_hook_id,
    repo_key,
)
from pipeline.sources.locations import redact_url, repo_name_from
from pipeline.stages.ref_deletion import delete_ref as delete_ref_and_rows

log = logging.getLogger("quarry.api")
router = APIRouter(prefix="/v1/push-hooks", tags=["push hooks"])
receivers = APIRouter(prefix="/v1/hooks", tags=["push hooks"])
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_ERROR: Final = {
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
}
RECEIVER_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "A ping, a redelivered push (its job) or a ref deleted."},
    202: {"description": "A push's job was enqueued, or the event was ignored (the reason)."},
    400: {"description": "The body is not a JSON object, or lacks a ref or commit.", **_ERROR},
    401: {"description": "The signature or token is missing or wrong.", **_ERROR},
    403: {"description": "The payload is of another repository than the hook's.", **_ERROR},
    404: {"description": "No such hook for this platform.", **_ERROR},
    409: {"description": "The ref is the repository's default ref: not deleted.", **_ERROR},
    413: {"description": "The body is larger than push_hook_max_body_bytes.", **_ERROR},
    503: {"description": "The ingest queue is full: redeliver later (Retry-After).", **_ERROR},
}


class PushHookCreate(BaseModel):
    """A hook for one repository: the platform that delivers (``github`` or ``gitlab``),
    the URL Quarry clones (checked like a job's source), the repository name (default:
    from the URL) and optionally the git credential that covers the URL."""

    platform: str = Field(min_length=1, max_length=20)
    clone_url: str = Field(min_length=1, max_length=4096)
    repo: str | None = Field(None, max_length=200)
    credential: str | None = Field(None, max_length=100)


@router.post("", status_code=201)
def create_push_hook(
    body: PushHookCreate, tenant: AdminTenant, state: State, http: Request, response: Response
) -> dict[str, Any]:
    """Register a push hook (201): its URL and its secret, which is shown only in this
    answer. 409 when the repository has a hook of that platform already."""
    response.headers["Cache-Control"] = "no-store"  # it carries a secret
    platform = check_platform(body.platform)
    clone_url = _checked_clone_url(state, body.clone_url)
    repo = check_repo_name(body.repo or repo_name_from(JobSource(SourceKind.GIT, clone_url)))
    credential = _checked_credential(state, tenant, body.credential, clone_url)
    hook = PushHook(new_hook_id(), tenant, repo, platform, clone_url, credential, time.time())
    secret = hook_secret(_master(state), hook)  # before it is stored: a bad config stores none
    state.push_hooks.add(hook)
    return {**_public(hook, http), "secret": secret}


@router.get("")
def list_push_hooks(
    tenant: AdminTenant,
    state: State,
    http: Request,
    repo: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """The tenant's push hooks (of one repository), without their secrets."""
    return {"push_hooks": [_public(h, http) for h in state.push_hooks.list(tenant, repo)]}


@router.delete("/{hook_id}", status_code=204)
def remove_push_hook(hook_id: str, tenant: AdminTenant, state: State) -> Response:
    """Remove a push hook (204): its URL answers 404 from now on. 404 if the tenant has
    no such hook."""
    if not state.push_hooks.remove(tenant, hook_id):
        raise HTTPException(404, f"push hook {hook_id[:64]!r} not found")
    return Response(status_code=204)


@receivers.post("/github/{hook_id}", status_code=202, responses=RECEIVER_RESPONSES)
async def receive_github_push(
    hook_id: str,
    *,
    http: Request,
    state: State,
    x_github_event: Annotated[str | None, Header(alias=GITHUB_EVENT_HEADER)] = None,
    x_hub_signature_256: Annotated[str | None, Header(alias=GITHUB_SIGNATURE_HEADER)] = None,
    x_github_delivery: Annotated[str | None, Header(alias="X-GitHub-Delivery")] = None,
) -> JSONResponse:
    """Where a GitHub repository's webhook delivers (content type application/json, the
    hook's secret, the push event). Needs no token: the signature
    (``X-Hub-Signature-256``) proves the delivery."""
    delivery = _Delivery(x_github_event, x_hub_signature_256, x_github_delivery)
    return await _receive(Platform.GITHUB, hook_id, http, state, delivery)


@receivers.post("/gitlab/{hook_id}", status_code=202, responses=RECEIVER_RESPONSES)
async def receive_gitlab_push(
    hook_id: str,
    *,
    http: Request,
    state: State,
    x_gitlab_event: Annotated[str | None, Header(alias=GITLAB_EVENT_HEADER)] = None,
    x_gitlab_token: Annotated[str | None, Header(alias=GITLAB_TOKEN_HEADER)] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    x_gitlab_event_uuid: Annotated[str | None, Header(alias="X-Gitlab-Event-UUID")] = None,
) -> JSONResponse:
    """Where a GitLab project's webhook delivers (push events and tag push events, the
    hook's secret token). Needs no token: ``X-Gitlab-Token`` proves the delivery."""
    delivery = _Delivery(x_gitlab_event, x_gitlab_token, idempotency_key or x_gitlab_event_uuid)
    return await _receive(Platform.GITLAB, hook_id, http, state, delivery)


class _Delivery:
    """The headers of a delivery that matter: its event, its proof and its id."""

    def __init__(self, event: str | None, proof: str | None, delivery_id: str | None) -> None:
        self.event, self.proof, self.delivery_id = event, proof, delivery_id


def _refuse(http: Request, status: int, detail: str) -> HTTPException:
    audit.note(http, reason=detail)
    return HTTPException(status, detail)


async def _receive(
    platform: Platform, hook_id: str, http: Request, state: ApiState, delivery: _Delivery
) -> JSONResponse:
    audit.note(http, hook_id=hook_id[:64])
    hook = await run_in_threadpool(state.push_hooks.get, hook_id) if is_hook_id(hook_id) else None
    if hook is None or hook.platform is not platform:
        raise _refuse(http, 404, f"push hook {hook_id[:64]!r} not found for {platform.value}")
    audit.note(http, tenant=hook.tenant)
    body = await _bounded_body(http, state.settings.push_hook_max_body_bytes)
    _verify(http, hook, _master(state), body, delivery.proof)
    kind = event_kind(platform, delivery.event)
    if kind is EventKind.OTHER:
        shown = (delivery.event or "")[:100]
        return _answer(202, status="ignored", reason=f"event {shown!r} is not a push")
    try:
        payload = payload_of(body)
        event = push_event(hook, payload) if kind is EventKind.PUSH else None
    except PayloadError as exc:
        raise _refuse(http, 400, str(exc)) from None
    except ForeignRepositoryError as exc:
        raise _refuse(http, 403, str(exc)) from None
    if event is None:  # GitHub's ping, sent when the hook is made
        return _answer(200, status="pong", hook_id=hook.hook_id)
    if isinstance(event, Ignored):
        return _answer(202, status="ignored", reason=event.reason)
    audit.note(http, scope="write")  # accepted: the tenant's write, made by its hook
    if event.action is PushAction.DELETE:
        return await run_in_threadpool(_delete, http, state, hook, event)
    return await run_in_threadpool(_index, http, state, hook, event, delivery.delivery_id)


def _verify(http: Request, hook: PushHook, master: bytes, body: bytes, proof: str | None) -> None:
    secret = hook_secret(master, hook)
    if hook.platform is Platform.GITHUB:
        header, valid = GITHUB_SIGNATURE_HEADER, github_signed(secret, body, proof)
    else:
        header, valid = GITLAB_TOKEN_HEADER, gitlab_token_matches(secret, proof)
    if not proof:
        raise _refuse(http, 401, f"{header}: missing; set the hook's secret")
    if not valid:
        raise _refuse(http, 401, f"{header}: does not match this hook's secret")


def _index(
    http: Request, state: ApiState, hook: PushHook, event: PushEvent, delivery_id: str | None
) -> JSONResponse:
    assert event.commit is not None  # an INDEX event has one
    if delivery_id is not None and not _DELIVERY_ID.match(delivery_id):
        detail = "delivery id header: use 1-100 letters, digits, '.', '_', ':' or '-'"
        raise _refuse(http, 400, detail)
    # A redelivery carries the delivery's id again: it finds the job the first made. A
    # platform that sends none (an old GitLab) dedupes on the ref and commit.
    key = delivery_id or f"{event.ref_name}@{event.commit}"
    request = JobRequest(
        repo=hook.repo_ref,
        source=JobSource(SourceKind.GIT, hook.clone_url, ref=clone_ref(event)),
        commit=event.commit,
        idempotency_key=f"push:{hook.hook_id}:{key}"[:200],
        ref_name=event.ref_name,
        default_ref=event.default_ref,
    )
    try:
        job, created = submit_job(state, request)
    except QueueFullError as exc:
        retry_after = max(1, math.ceil(exc.retry_after_s))
        return JSONResponse(
            {"detail": f"{exc}; redeliver after {retry_after} s", "retry_after_s": retry_after},
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )
    return _answer(
        202 if created else 200,
        status="queued" if created else "existing",
        job_id=job.job_id,
        ref_name=event.ref_name,
        commit=event.commit,
        status_url=str(http.url_for("get_job", job_id=job.job_id)),
    )


def clone_ref(event: PushEvent) -> str | None:
    """What the job clones: the pushed commit itself, not the ref, so that the snapshot
    is of that commit even when the branch moved on before the job ran (the fetcher
    checks it got that commit)."""
    return event.commit


def _delete(http: Request, state: ApiState, hook: PushHook, event: PushEvent) -> JSONResponse:
    try:
        removed = delete_ref(state, hook.repo_ref, event.ref_name)
    except ConflictError as exc:
        raise _refuse(http, 409, str(exc)) from None
    return _answer(200, status="deleted" if removed else "absent", ref_name=event.ref_name)


def delete_ref(state: ApiState, repo: RepoRef, ref_name: str) -> bool:
    """Delete index ref ``ref_name`` of ``repo`` and what only it held
    (pipeline.stages.ref_deletion): True removed, False no such ref (or repository);
    ConflictError for the repository's default ref."""
    try:
        delete_ref_and_rows(state.jobs.snapshots, state.vectors, repo, ref_name)
    except NotFoundError:
        return False
    return True


async def _bounded_body(http: Request, limit: int) -> bytes:
    declared = http.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _refuse(http, 413, f"body: larger than {limit} bytes (push_hook_max_body_bytes)")
    body = bytearray()
    async for piece in http.stream():
        body += piece
        if len(body) > limit:
            raise _refuse(http, 413, f"body: larger than {limit} bytes (push_hook_max_body_bytes)")
    return bytes(body)


def _answer(code: int, /, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=code)


def _master(state: ApiState) -> bytes:
    master = state.endpoints.webhook_secret.encode()
    if not master:
        raise ConfigError("webhook secret is empty: set QUARRY_WEBHOOK_SECRET")
    return master


def _checked_clone_url(state: ApiState, url: str) -> str:
    """The clone URL, checked by the source policy of ``POST /v1/jobs`` (which refuses
    one holding credentials): a git URL with a host and a project path (deliveries are
    matched against them)."""
    try:
        source = checked_source(state, url, None)
    except InvalidInputError as exc:
        raise InvalidInputError(f"clone_url: {exc}") from None
    shown = redact_url(source.location)
    if source.kind is not SourceKind.GIT:
        raise InvalidInputError(f"clone_url: {shown!r} is not a git URL (https, ssh)")
    if repo_key(source.location) is None:
        raise InvalidInputError(f"clone_url: {shown!r} names no host and project path")
    return source.location


def _checked_credential(
    state: ApiState, tenant: str, name: str | None, clone_url: str
) -> str | None:
    """The name of the tenant's credential that covers the clone URL (a clone picks its
    credential by URL: naming one checks that the hook's clones will have it)."""
    if name is None:
        return None
    vault = state.credentials
    if vault is None:
        raise InvalidInputError("credential: the server has no credentials key")
    found = vault.get(tenant, name)
    if best_scope(clone_url, [found.scope]) is None:
        raise InvalidInputError(
            f"credential: {name!r} (scope {found.scope}) does not cover {redact_url(clone_url)!r}"
        )
    return name


def _public(hook: PushHook, http: Request) -> dict[str, Any]:
    receiver = f"receive_{hook.platform.value}_push"
    return {**hook.public(), "url": str(http.url_for(receiver, hook_id=hook.hook_id))}
