"""Session fixtures: one real local stack (Redis, PostgreSQL + pgvector, the Bolt graph
server, Celery workers, Flower, the API) on free ports, started once per test session.

A service that cannot start fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.endpoints import Endpoints, resolve_endpoints
from config.settings import QuarrySettings, load_settings
from devstack.stack import Stack
from pipeline.adapters.neo4j.driver import make_driver
from pipeline.adapters.neo4j.graph_store import Neo4jGraphStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from tests.stackutil import stack_env, stack_folder


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with stack_folder("quarry-test-stack-") as data_dir:
        settings = load_settings(env=stack_env(data_dir))
        running = Stack(settings)
        try:
            running.up()
            yield running
        finally:
            running.down()


@pytest.fixture(scope="session")
def stack_settings(stack: Stack) -> QuarrySettings:
    return stack.settings


@pytest.fixture(scope="session")
def endpoints(stack: Stack) -> Endpoints:
    return resolve_endpoints(stack.settings)


@pytest.fixture(scope="module")
def vectors(endpoints: Endpoints) -> Iterator[PgVectorStore]:
    """The session stack's vector store, for tests that look at what a job wrote."""
    with PgVectorStore(endpoints.postgres_dsn, dimension=384) as store:
        yield store


@pytest.fixture(scope="module")
def graph(endpoints: Endpoints) -> Iterator[Neo4jGraphStore]:
    """The session stack's graph store, for tests that look at what a job wrote."""
    driver = make_driver(endpoints.neo4j_uri, endpoints.neo4j_user, endpoints.neo4j_password)
    try:
        yield Neo4jGraphStore(driver, endpoints.neo4j_database)
    finally:
        driver.close()
