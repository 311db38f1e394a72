"""Fixtures of the security tests: tenants with tokens, API clients, a tiny repository
to index, and a webhook receiver on loopback (which the test stack allows callbacks to;
the default settings do not, see test_callback_addresses.py)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from config.endpoints import Endpoints
from pipeline.adapters.postgres.token_store import PgTokenStore
from tests.security.helpers import Receiver, RecordingHandler, Tenant


@pytest.fixture(scope="session")
def token_store(endpoints: Endpoints) -> Iterator[PgTokenStore]:
    with PgTokenStore(endpoints.postgres_dsn, pool_size=1) as store:
        yield store


@pytest.fixture(scope="session")
def secrets_used() -> list[str]:
    """Every token and secret the security tests used so far: the log scan looks for
    them all."""
    return []


@pytest.fixture(scope="session")
def new_tenant(token_store: PgTokenStore, secrets_used: list[str]) -> Callable[[str], Tenant]:
    """Makes a tenant of its own (``sec-<role>-<random>``) with a fresh token."""

    def make(role: str) -> Tenant:
        name = f"sec-{role}-{uuid.uuid4().hex[:8]}"
        tenant = Tenant(name, token_store.create(name, f"security tests: {role}"))
        secrets_used.append(tenant.token)
        return tenant

    return make


@pytest.fixture(scope="session")
def client_for(endpoints: Endpoints) -> Iterator[Callable[[Tenant], httpx.Client]]:
    """An HTTP client of the session stack's API that sends a tenant's token."""
    clients: list[httpx.Client] = []

    def make(tenant: Tenant) -> httpx.Client:
        client = httpx.Client(
            base_url=endpoints.api_url,
            headers={"Authorization": f"Bearer {tenant.token}"},
            timeout=60,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), RecordingHandler)
    server.received, server.answers = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Callable[[str], Path]:
    """Writes a two-file Python repository whose identifiers all carry ``marker``."""

    def make(marker: str) -> Path:
        root = tmp_path / marker
        root.mkdir()
        (root / f"{marker}_ledger.py").write_text(
            f'"""The {marker} ledger."""\n\n\n'
            f"class {marker.title()}Ledger:\n"
            f'    """Balances of {marker}."""\n\n'
            f"    def settle_{marker}(self, amount):\n"
            f"        return amount * 2\n\n\n"
            f"def open_{marker}_ledger():\n"
            f"    return {marker.title()}Ledger()\n",
            encoding="utf-8",
        )
        (root / f"{marker}_report.py").write_text(
            f"from {marker}_ledger import open_{marker}_ledger\n\n\n"
            f"def report_{marker}():\n"
            f"    ledger = open_{marker}_ledger()\n"
            f"    return ledger.settle_{marker}(21)\n",
            encoding="utf-8",
        )
        return root

    return make
