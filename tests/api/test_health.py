"""The API's health endpoints against the real stack and against missing services."""

from __future__ import annotations

from fastapi.testclient import TestClient

from config.endpoints import resolve_endpoints
from config.settings import QuarrySettings, load_settings
from devstack.stack import Stack
from tests.stackutil import free_ports


def test_readyz_is_ready_when_redis_postgres_and_graph_answer(stack: Stack) -> None:
    from api.app import create_app

    token = resolve_endpoints(stack.settings).api_token
    with TestClient(create_app(stack.settings)) as client:
        assert client.get("/readyz").status_code == 401
        response = client.get("/readyz", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"redis", "postgres", "graph"}


def test_readyz_names_every_unreachable_service_with_503() -> None:
    from api.app import create_app

    redis_port, pg_port, bolt_port = free_ports(3)
    settings: QuarrySettings = load_settings(
        env={
            "QUARRY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "QUARRY_POSTGRES_DSN": f"postgresql://postgres@127.0.0.1:{pg_port}/quarry",
            "QUARRY_NEO4J_URI": f"bolt://127.0.0.1:{bolt_port}",
            "QUARRY_NEO4J_PASSWORD": "x",
        }
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        response = client.get("/readyz", headers={"Authorization": "Bearer qk_any"})
    # The token cannot even be checked: not ready, and the answer says which store.
    assert response.status_code == 503
    assert "postgres unavailable" in response.json()["detail"]
