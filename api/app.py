"""The API app factory: ``uvicorn api.app:create_app --factory``.

Must not import: workers/, torch, celery (it enqueues through tasks.client).
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.endpoints import Endpoints, resolve_endpoints
from config.settings import QuarrySettings, load_settings
from pipeline.adapters.probes import probe_graph, probe_postgres, probe_redis


def create_app(settings: QuarrySettings | None = None) -> FastAPI:
    settings = settings or load_settings()
    endpoints = resolve_endpoints(settings)
    app = FastAPI(title="Quarry", version="0.1.0", docs_url="/docs")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up. Needs no token."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Redis, PostgreSQL and the graph answer; 503 names the ones that do not."""
        return _readiness(endpoints)

    @app.get("/metrics", tags=["health"])
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _readiness(endpoints: Endpoints) -> JSONResponse:
    probes = {
        "redis": probe_redis(endpoints.redis_url),
        "postgres": probe_postgres(endpoints.postgres_dsn),
        "graph": probe_graph(
            endpoints.neo4j_uri,
            endpoints.neo4j_user,
            endpoints.neo4j_password,
            endpoints.neo4j_database,
        ),
    }
    ready = all(p.healthy for p in probes.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": {n: {"healthy": p.healthy, "detail": p.detail} for n, p in probes.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503)
