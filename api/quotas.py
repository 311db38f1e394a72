"""Tenant quotas at the HTTP edge (the rules: pipeline/quotas.py): a new job's admission,
the ``X-Quota-Remaining-*`` headers on every authenticated answer, the refusal's body,
and the headers in the OpenAPI document.

No route sets a quota: an operator does, with ``quarry quota set`` over PostgreSQL, so
a tenant (even with an admin token) cannot raise its own.

Must not import: workers/, cli/, torch, celery, pipeline.adapters (wiring/ names them).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.audit import NOTES
from api.state import ApiState
from pipeline.errors import PipelineError, QuotaExceededError
from pipeline.quotas import Quota, check_admission

log = logging.getLogger("quarry.api")

_HEADER_TEXT = {
    Quota.CONCURRENT_JOBS: "Jobs the tenant may still have queued or running at once.",
    Quota.FILES_PER_DAY: "Files the tenant's jobs may still index today (UTC).",
    Quota.STORED_CHUNKS: "Chunks the tenant's repositories may still hold.",
}


def admit_job(state: ApiState, tenant: str, job_id: str) -> None:
    """Refuse the just-created job ``job_id`` if it passes one of the tenant's quotas:
    the job is discarded (a retry creates it anew) and QuotaExceededError names the
    quota. The status is read after the job was written (see pipeline.quotas)."""
    status = state.quota_status(tenant, fresh=True)
    try:
        check_admission(status)
    except QuotaExceededError:
        state.jobs.jobs.discard(job_id)
        state.forget_quota_status(tenant)
        raise


def precheck(state: ApiState, tenant: str) -> None:
    """Refuse before an upload when a quota already refuses any new job (the status kept
    for a few seconds; the job's admission checks again)."""
    check_admission(state.quota_status(tenant), created=0)


def refusal(_request: Request, exc: Exception) -> JSONResponse:
    """429 with Retry-After (a quota that frees up with time), else 403; the body names
    the quota, its limit and what is used."""
    assert isinstance(exc, QuotaExceededError)
    body: dict[str, Any] = {
        "detail": str(exc),
        "quota": exc.quota,
        "limit": exc.limit,
        "used": exc.used,
    }
    if exc.retry_after_s is None:
        return JSONResponse(body, status_code=403)
    retry_after = max(1, math.ceil(exc.retry_after_s))
    body["retry_after_s"] = retry_after
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(retry_after)})


class QuotaHeadersMiddleware:
    """Pure ASGI: an answer to a caller whose token was accepted (the token check noted
    its tenant) carries ``X-Quota-Remaining-<Quota>`` headers, from the tenant's status
    kept ``quota_status_cache_s`` seconds per API process. An observer: a status that
    cannot be read leaves the headers out, never fails the answer."""

    def __init__(self, app: ASGIApp, state: ApiState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                notes = scope.get(NOTES)
                # Only for an accepted token (it notes its id): a push-hook delivery notes
                # its hook's tenant before its signature is checked, and must not learn it.
                accepted = isinstance(notes, dict) and notes.get("token_id") is not None
                tenant = notes.get("tenant") if accepted and isinstance(notes, dict) else None
                if isinstance(tenant, str):
                    # A status read lately is at hand; else the store is asked from the
                    # thread pool (never on the event loop), once for the tenant's
                    # requests that ask meanwhile.
                    extra = await self._headers(tenant)
                    if extra:
                        headers = list(message.get("headers", []))
                        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
                        message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, answer)

    async def _headers(self, tenant: str) -> dict[str, str]:
        try:
            return (await self.state.quota_status_soon(tenant)).headers()
        except PipelineError as exc:  # an observer: the answer goes out without them
            log.warning("quota headers of tenant %r left out: %s", tenant, exc)
            return {}


def document_headers(schema: dict[str, Any]) -> None:
    """Every operation that needs a token shows the quota headers on each of its answers,
    and the job-creating ones their quota refusals (429, 403)."""
    headers = {
        q.header: {"description": _HEADER_TEXT[q], "schema": {"type": "integer", "minimum": 0}}
        for q in Quota
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "x-quarry-scope" not in operation:
                continue
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {}).update(headers)
            if method == "post" and path in ("/v1/jobs", "/v1/jobs/archive"):
                _document_refusals(operation)


def _document_refusals(operation: dict[str, Any]) -> None:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/QuotaRefusal"}}}
    responses = operation.setdefault("responses", {})
    responses["429"] = {
        "description": "A full ingest queue, or a quota that frees up with time "
        "(`concurrent_jobs`, `files_per_day`; the body names it): retry after Retry-After.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": error,
    }
    responses["403"] = {
        "description": "The token lacks the scope, or the `stored_chunks` quota is reached "
        "(the body names it).",
        "content": error,
    }


QUOTA_REFUSAL_SCHEMA: dict[str, Any] = {
    "title": "QuotaRefusal",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What was refused, naming the quota."},
        "quota": {"type": "string", "enum": [q.value for q in Quota]},
        "limit": {"type": "integer"},
        "used": {"type": "integer"},
        "retry_after_s": {"type": "integer"},
    },
}
