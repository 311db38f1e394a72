"""The API's health endpoints against the real stack and against missing services."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from config.endpoints import resolve_endpoints
from config.settings import load_settings
from devstack.stack import Stack
from tests.stackutil import unreachable_stores_env


def test_readyz_is_ready_when_redis_postgres_and_graph_answer(stack: Stack) -> None:
    from api.app import create_app

    token = resolve_endpoints(stack.settings).api_token
    with TestClient(create_app(stack.settings)) as client:
        # A probe has no token: it gets the status and nothing more.
        anonymous = client.get("/readyz")
        forged = client.get("/readyz", headers={"Authorization": "Bearer qk_forged"})
        response = client.get("/readyz", headers={"Authorization": f"Bearer {token}"})
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ready"}
    assert forged.status_code == 200 and forged.json() == {"status": "ready"}
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"redis", "postgres", "graph"}


def test_readyz_answers_503_without_a_token_and_names_no_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from api.app import create_app

    settings = load_settings(env=unreachable_stores_env())
    with caplog.at_level(logging.WARNING, "quarry.api"), TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        anonymous = client.get("/readyz")
        # The token cannot even be checked (its store is down): the same short answer.
        response = client.get("/readyz", headers={"Authorization": "Bearer qk_any"})
    for answer in (anonymous, response):
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable"}
    # The operator's log names each store that did not answer, and why.
    logged = "\n".join(r.getMessage() for r in caplog.records if "not ready" in r.getMessage())
    for store in ("redis", "postgres", "graph"):
        assert f"{store} (" in logged, logged


def test_an_open_readyz_called_many_times_probes_the_stores_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import api.app
    from api.app import create_app

    settings = load_settings(env=unreachable_stores_env())
    rounds: list[float] = []
    real = api.app.probe_stores

    def counted(endpoints: object) -> object:
        rounds.append(time.monotonic())
        return real(endpoints)  # type: ignore[arg-type]

    monkeypatch.setattr(api.app, "probe_stores", counted)
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda _: client.get("/readyz").status_code, range(64)))
        elapsed = time.monotonic() - started
    assert answers == [503] * 64
    # One round per started second, however many callers: not three connections a call.
    assert 1 <= len(rounds) <= int(elapsed) + 1, (len(rounds), elapsed)
