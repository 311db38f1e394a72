"""The API app factory: ``uvicorn api.app:create_app --factory``.

Errors map to status codes in one place: bad input 422 (a source, a field, a filter), a
full queue 429 with ``Retry-After``, a store down 503; every error body is
``{"detail": "..."}``, a sentence naming the bad input (validation errors add the
validator's list under ``errors``), never a traceback.

Must not import: workers/, torch, celery (it enqueues through tasks.client).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api import (
    quotas,
    routes_credentials,
    routes_jobs,
    routes_push_hooks,
    routes_refs,
    routes_repos,
    routes_search,
    routes_tokens,
    routes_ui,
    routes_webhooks,
)
from api.audit import AuditLog, AuditMiddleware
from api.auth import authorize, bearer_tenant, needs_token, route_scopes, scoped
from api.reference import add_reference
from api.state import ApiState, probe_stores
from config.endpoints import Endpoints, resolve_endpoints
from config.logging import configure_logging
from config.settings import QuarrySettings, audit_log_path, load_settings
from pipeline.errors import (
    ConfigError,
    ConflictError,
    ModelNotExportedError,
    NotFoundError,
    PermanentError,
    QueueFullError,
    QuotaExceededError,
    StoreUnavailableError,
    UnsupportedInputError,
)
from tasks.exposition import api_registry

log = logging.getLogger("quarry.api")


def create_app(settings: QuarrySettings | None = None) -> FastAPI:
    settings = settings or load_settings()
    if not logging.getLogger().handlers:
        # Under uvicorn (which configures only its own loggers) Quarry's lines would go
        # nowhere below WARNING; a host that configured logging (a test) keeps its own.
        configure_logging(settings.log_level, settings.log_json)
    endpoints = resolve_endpoints(settings)
    state = ApiState(settings, endpoints)
    audit_log = AuditLog(
        audit_log_path(settings),
        max_bytes=settings.audit_log_max_bytes,
        backups=settings.audit_log_backups,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        audit_log.start()
        if settings.search_warm_on_start:
            threading.Thread(target=state.warm, name="quarry-warm", daemon=True).start()
        try:
            yield
        finally:
            state.close()
            audit_log.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Quarry",
        version="0.1.0",
        # FastAPI's own pages load Swagger UI from a CDN: api/reference.py serves it.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="Index code repositories; follow jobs; search. Every call needs a bearer"
        " token (`quarry token create --tenant T`; the local stack's is in `quarry dev env`):"
        " press Authorize and paste it. The page keeps it in memory only. Each route needs"
        " one scope of the token (read, write or admin; its description says which): 401"
        " without a valid token, 403 with one that lacks the scope. Write and admin calls,"
        " and refused ones, are written to the audit log.",
    )
    app.state.quarry = state
    app.add_middleware(quotas.QuotaHeadersMiddleware, state=state)  # inside the audit's
    app.add_middleware(AuditMiddleware, audit=audit_log)
    app.include_router(routes_jobs.router)
    app.include_router(routes_credentials.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_push_hooks.router)
    app.include_router(routes_push_hooks.receivers)
    app.include_router(routes_repos.router)
    app.include_router(routes_repos.deletions_router)
    app.include_router(routes_refs.router)
    app.include_router(routes_search.router)
    app.include_router(routes_tokens.router)
    app.include_router(routes_ui.router)
    _error_handlers(app)
    _model_handlers(app)
    _openapi(app)
    add_reference(app, enabled=settings.api_docs)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up. Needs no token. On the event loop, not the thread pool: a
        liveness probe answers however many searches hold the pool's threads."""
        return {"status": "ok"}

    readiness = _Readiness(endpoints)

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Redis, PostgreSQL and the graph answer: 200 ``{"status": "ready"}``, else 503
        ``{"status": "unavailable"}``. Needs no token (a readiness probe has none) and
        then says nothing more; with a valid token the body names each store's health."""
        detailed = await bearer_tenant(request) is not None
        return await run_in_threadpool(_readiness, readiness, detailed)

    registry = api_registry(lambda: state.admission)

    @app.get("/metrics", tags=["health"], dependencies=[Depends(scoped("read"))])
    def metrics() -> Response:
        """This process's metrics, and every queue's depth read from Redis now."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QueueFullError)
    async def queue_full(_request: Request, exc: QueueFullError) -> JSONResponse:
        # async: a sync handler takes a thread-pool hop, and a tenant past its search
        # share must not take threads from the others with its refusals.
        retry_after = max(1, math.ceil(exc.retry_after_s))
        return JSONResponse(
            {"detail": f"{exc}; retry after {retry_after} s", "retry_after_s": retry_after},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )

    app.add_exception_handler(QuotaExceededError, quotas.refusal)

    @app.exception_handler(StoreUnavailableError)
    def unavailable(_request: Request, exc: StoreUnavailableError) -> JSONResponse:
        log.warning("store unavailable: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI decodes a JSON body before it runs the token dependency: a caller
        # without a valid token gets a 401 for a malformed body too, not a 422, and one
        # whose token lacks the route's scope a 403.
        if needs_token(request):
            try:
                await authorize(request)
            except HTTPException as denied:
                return JSONResponse(
                    {"detail": denied.detail},
                    status_code=denied.status_code,
                    headers=denied.headers,
                )
            except StoreUnavailableError as down:
                return unavailable(request, down)
        # Rendered as ASCII JSON: the errors echo the input, and a lone surrogate
        # (valid JSON, "\udcff") cannot be encoded as UTF-8.
        errors = exc.errors()
        if request.url.path.startswith(routes_credentials.PREFIX):
            # Never echo what was sent for a credential: it may be the secret.
            errors = [{k: v for k, v in e.items() if k not in {"input", "ctx"}} for e in errors]
        # One shape for every error: "detail" is a sentence naming the inputs; the
        # validator's own list follows under "errors".
        detail = "; ".join(f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)
        body = json.dumps(
            {"detail": detail[:2000], "errors": jsonable_encoder(errors)}, ensure_ascii=True
        )
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(ConfigError)
    def misconfigured(_request: Request, exc: ConfigError) -> JSONResponse:
        log.error("configuration: %s", exc)
        return JSONResponse({"detail": f"server misconfigured: {exc}"}, status_code=500)

    @app.exception_handler(PermanentError)
    def bad_input(_request: Request, exc: PermanentError) -> JSONResponse:
        code = 422
        if isinstance(exc, UnsupportedInputError):
            code = 415
        elif isinstance(exc, ConflictError):
            code = 409
        elif isinstance(exc, NotFoundError):
            code = 404
        return JSONResponse({"detail": str(exc)}, status_code=code)


def _model_handlers(app: FastAPI) -> None:
    @app.exception_handler(ModelNotExportedError)
    def not_exported(_request: Request, exc: ModelNotExportedError) -> JSONResponse:
        # An install step was skipped where the API runs: search is unavailable until it
        # is done; other routes and /readyz are unaffected.
        log.error("search unavailable: %s", exc)
        return JSONResponse({"detail": f"search unavailable: {exc}"}, status_code=503)


def _field(loc: object) -> str:
    """A validation error's input as the caller names it: ``q``, ``body.source``..."""
    parts = [str(p) for p in loc] if isinstance(loc, (list, tuple)) else [str(loc)]
    if len(parts) > 1 and parts[0] in {"query", "path", "header"}:
        parts = parts[1:]  # where it came from is implied for these; a body keeps "body."
    return ".".join(parts) or "request"


def _openapi(app: FastAPI) -> None:
    """The OpenAPI document describes 422 bodies as they are sent (see invalid_request),
    and names each route's scope (``x-quarry-scope``, its description, a 403)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _scopes_schema(app, schema)
            quotas.document_headers(schema)
            schema["components"]["schemas"]["QuotaRefusal"] = quotas.QUOTA_REFUSAL_SCHEMA
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = {
                    "title": "HTTPValidationError",
                    "type": "object",
                    "required": ["detail", "errors"],
                    "properties": {
                        "detail": {"type": "string", "description": "Each bad input, named."},
                        "errors": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ValidationError"},
                        },
                    },
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _scopes_schema(app: FastAPI, schema: dict[str, Any]) -> None:
    # iter_route_contexts: FastAPI includes routers lazily (app.routes lists them).
    for context in iter_route_contexts(app.routes):
        scopes = sorted(route_scopes(context.route))
        operations = schema.get("paths", {}).get(context.path, {})
        for method in context.methods or ():
            operation = operations.get(method.lower())
            if not scopes or operation is None:
                continue
            needs = " and ".join(f"`{s}`" for s in scopes)
            operation["x-quarry-scope"] = scopes[0] if len(scopes) == 1 else scopes
            operation["description"] = (
                f"Needs the {needs} scope.\n\n{operation.get('description', '')}".strip()
            )
            operation.setdefault("responses", {})["403"] = {
                "description": f"The token lacks the {needs} scope.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
    schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "Error",
        {
            "title": "Error",
            "type": "object",
            "required": ["detail"],
            "properties": {"detail": {"type": "string", "description": "What went wrong."}},
        },
    )


class _Readiness:
    """The stores' probes, shared for ``PROBE_TTL_S``: an open /readyz called hundreds of
    times a second (by anyone: it needs no token) makes one round of probes a second, not
    three connections a call. Callers that arrive during a round wait for its answer."""

    PROBE_TTL_S = 1.0

    def __init__(self, endpoints: Endpoints) -> None:
        self._endpoints = endpoints
        self._lock = threading.Lock()
        self._at = -math.inf
        self._probes: dict[str, Any] = {}

    def probes(self) -> dict[str, Any]:
        with self._lock:
            if time.monotonic() - self._at >= self.PROBE_TTL_S:
                self._probes = probe_stores(self._endpoints)
                self._at = time.monotonic()
                down = [f"{n} ({p.detail})" for n, p in self._probes.items() if not p.healthy]
                if down:
                    log.warning("not ready: %s", ", ".join(down))
            return self._probes


def _readiness(readiness: _Readiness, detailed: bool) -> JSONResponse:
    probes = readiness.probes()
    ready = all(p.healthy for p in probes.values())
    body: dict[str, object] = {"status": "ready" if ready else "unavailable"}
    if detailed:
        body["checks"] = {n: {"healthy": p.healthy, "detail": p.detail} for n, p in probes.items()}
    return JSONResponse(body, status_code=200 if ready else 503)
