"""A tenant's share of the API's searches, through the app on the session stack's
PostgreSQL (tokens) with the searcher held open by the test: while one tenant's searches
fill its slot and its line, its next search is refused at once (429, Retry-After, the
body naming the tenant and the bound) and counted; another tenant's search answers; the
held searches answer when they are let go; a graph read shares the same places; bad
input never takes a slot; a tenant an operator gave its own search concurrency runs that
many; a search whose client hangs up while it waits leaves the line
and never runs (served by uvicorn: only a real connection can hang up)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.state import ApiState
from devstack.stack import Stack
from pipeline.adapters.postgres.quota_store import PgQuotaStore
from pipeline.adapters.postgres.token_store import PgTokenStore
from pipeline.search.query import SearchRequest
from pipeline.search.searcher import SearchResponse
from tests.api.idle import idle_api, served_api
from tests.workers.jobs_api import until

IDLE_DB = 13  # no worker of the session stack reads this database


class HeldSearcher:
    """Answers every search with no results; a search of ``held_tenant`` first waits
    until ``release`` is set, and says it started by ``started``."""

    def __init__(self, held_tenant: str) -> None:
        self.held_tenant = held_tenant
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.ran: list[str] = []

    def search(self, request: SearchRequest) -> SearchResponse:
        self.ran.append(request.tenant)
        if request.tenant == self.held_tenant:
            self.started.release()
            assert self.release.wait(30), "the test never let the held search go"
        return SearchResponse(request, [], {"embed": 0.0})


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[TestClient]:
    overrides: dict[str, Any] = {
        "search_tenant_concurrency": 1,
        "search_tenant_waiting": 1,
        "search_tenant_wait_s": 30.0,
    }
    with idle_api(stack, db=IDLE_DB, queue_bound_ingest=1000, **overrides) as client:
        yield client


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> Iterator[PgTokenStore]:
    from config.endpoints import resolve_endpoints

    with PgTokenStore(resolve_endpoints(stack.settings).postgres_dsn) as store:
        yield store


def auth(tokens: PgTokenStore, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.create(tenant, 'search share', ['read'])}"}


def busy_count(outcome: str = "busy") -> float:
    labels = {"mode": "hybrid", "outcome": outcome}
    return REGISTRY.get_sample_value("quarry_searches_total", labels) or 0.0


def test_a_tenant_past_its_share_gets_429_while_another_tenant_is_answered(
    api: TestClient, tokens: PgTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    flood, quiet = f"flood-{uuid.uuid4().hex[:6]}", f"quiet-{uuid.uuid4().hex[:6]}"
    flood_auth, quiet_auth = auth(tokens, flood), auth(tokens, quiet)
    searcher = HeldSearcher(flood)
    monkeypatch.setattr(ApiState, "searcher", property(lambda _self: searcher))
    busy_before = busy_count()

    def get(headers: dict[str, str]) -> httpx.Response:
        return api.get("/v1/search", params={"q": "parse the header"}, headers=headers)

    with ThreadPoolExecutor(2) as pool:
        running: Future[httpx.Response] = pool.submit(get, flood_auth)
        assert searcher.started.acquire(timeout=10), "the first search never started"
        waiting = pool.submit(get, flood_auth)
        slots = api.app.state.quarry.search_slots  # type: ignore[attr-defined]
        until(lambda: slots.queued(flood) >= 1, 10, "the second search to join the line")

        refused = get(flood_auth)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        detail = refused.json()["detail"]
        assert repr(flood) in detail and "search_concurrency 1" in detail
        assert busy_count() == busy_before + 1
        graph = api.get("/v1/graph/symbol", params={"repo": "any", "name": "f"}, headers=flood_auth)
        assert graph.status_code == 429  # graph reads share the tenant's places
        assert repr(flood) in graph.json()["detail"]

        answered = get(quiet_auth)  # the flood's slot and line are full; this is another tenant
        assert answered.status_code == 200, answered.text
        assert answered.json()["results"] == []

        bad = api.get("/v1/search", params={"q": "x", "k": 0}, headers=flood_auth)
        assert bad.status_code == 422  # checked before any slot: not a 429

        searcher.release.set()
        assert running.result(timeout=30).status_code == 200
        assert waiting.result(timeout=30).status_code == 200
    assert searcher.ran.count(flood) == 2  # the refused search never reached the searcher
    assert api.app.state.quarry.search_slots.tenants == 0  # type: ignore[attr-defined]


def test_a_tenant_with_its_own_search_concurrency_runs_that_many(
    api: TestClient, stack: Stack, tokens: PgTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.endpoints import resolve_endpoints

    big = f"big-{uuid.uuid4().hex[:6]}"
    headers = auth(tokens, big)
    with PgQuotaStore(resolve_endpoints(stack.settings).postgres_dsn, pool_size=1) as quotas:
        quotas.set_limits(big, {"search_concurrency": 2})  # the settings say 1
    searcher = HeldSearcher(big)
    monkeypatch.setattr(ApiState, "searcher", property(lambda _self: searcher))
    slots = api.app.state.quarry.search_slots  # type: ignore[attr-defined]

    def get() -> httpx.Response:
        return api.get("/v1/search", params={"q": "parse the header"}, headers=headers)

    with ThreadPoolExecutor(3) as pool:
        answers = [pool.submit(get) for _ in range(3)]
        for _ in range(2):
            assert searcher.started.acquire(timeout=10), "two searches did not run at once"
        until(lambda: slots.queued(big) == 1, 10, "the third search to wait")
        assert slots.running(big) == 2
        refused = get()  # its line (search_tenant_waiting 1) is full
        assert refused.status_code == 429
        assert "search_concurrency 2" in refused.json()["detail"]
        searcher.release.set()
        assert [a.result(timeout=30).status_code for a in answers] == [200, 200, 200]
    assert searcher.ran.count(big) == 3


def test_a_search_whose_client_hangs_up_while_waiting_leaves_the_line_and_never_runs(
    stack: Stack, tokens: PgTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = f"gone-{uuid.uuid4().hex[:6]}"
    headers = auth(tokens, tenant)
    searcher = HeldSearcher(tenant)
    monkeypatch.setattr(ApiState, "searcher", property(lambda _self: searcher))
    gone_before = busy_count("gone")
    overrides: dict[str, Any] = {
        "search_tenant_concurrency": 1,
        "search_tenant_waiting": 4,
        "search_tenant_wait_s": 30.0,
    }
    with (
        served_api(stack, db=IDLE_DB, queue_bound_ingest=1000, **overrides) as (url, app),
        httpx.Client(base_url=url, headers=headers, timeout=30) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        slots = app.state.quarry.search_slots
        running = pool.submit(client.get, "/v1/search", params={"q": "parse the header"})
        assert searcher.started.acquire(timeout=10), "the first search never started"

        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as hangs_up:
            hangs_up.sendall(
                b"GET /v1/search?q=parse+the+body HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: {headers['Authorization']}\r\n\r\n".encode()
            )
            until(lambda: slots.queued(tenant) == 1, 10, "the second search to join the line")
        # The socket is closed: the search leaves the line while the first still runs.
        until(lambda: slots.queued(tenant) == 0, 10, "the gone client's search to leave the line")
        assert slots.running(tenant) == 1
        assert busy_count("gone") == gone_before + 1

        searcher.release.set()
        assert running.result(timeout=30).status_code == 200
        until(lambda: slots.tenants == 0, 10, "the tenant's slot to be given back")
    assert searcher.ran == [tenant]  # the gone client's search never reached the searcher


def test_a_running_search_whose_client_hangs_up_keeps_its_slot_until_it_ends(
    stack: Stack, tokens: PgTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its thread cannot be stopped: were its slot given back when its client left, a
    tenant could hang up and send again for any number of searches at once."""
    tenant = f"gone-{uuid.uuid4().hex[:6]}"
    headers = auth(tokens, tenant)
    searcher = HeldSearcher(tenant)
    monkeypatch.setattr(ApiState, "searcher", property(lambda _self: searcher))
    overrides: dict[str, Any] = {"search_tenant_concurrency": 1, "search_tenant_wait_s": 30.0}
    with served_api(stack, db=IDLE_DB, queue_bound_ingest=1000, **overrides) as (url, app):
        slots = app.state.quarry.search_slots
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as hangs_up:
            hangs_up.sendall(
                b"GET /v1/search?q=parse+the+body HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: {headers['Authorization']}\r\n\r\n".encode()
            )
            assert searcher.started.acquire(timeout=10), "the search never started"
        time.sleep(0.3)  # the socket is closed; the search still runs in its thread
        assert slots.running(tenant) == 1
        searcher.release.set()
        until(lambda: slots.tenants == 0, 10, "the slot to be given back when the search ended")
