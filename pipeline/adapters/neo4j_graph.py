"""Neo4j driver construction and the translation of neo4j errors.

Works against Neo4j 5 and the local Bolt server (ArcadeDB); the database name is always
passed explicitly, as ArcadeDB requires.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import neo4j
from neo4j import exceptions as neo4j_errors

from pipeline.errors import ConfigError, InvalidInputError, StoreUnavailableError

STORE = "graph"


@contextmanager
def map_neo4j_errors(store: str = STORE) -> Iterator[None]:
    """Map neo4j exceptions: unreachable → transient, bad auth → config, bad query → input."""
    try:
        yield
    except neo4j_errors.AuthError as exc:
        raise ConfigError(f"{store} refused the credentials: {exc.message or exc}") from exc
    except (
        neo4j_errors.ServiceUnavailable,
        neo4j_errors.SessionExpired,
        neo4j_errors.TransientError,
        neo4j_errors.DriverError,
        OSError,
    ) as exc:
        raise StoreUnavailableError(store, str(exc) or type(exc).__name__) from exc
    except neo4j_errors.Neo4jError as exc:
        raise InvalidInputError(f"{store} rejected the query: {exc.message or exc}") from exc


def make_driver(uri: str, user: str, password: str, *, timeout_s: float = 5.0) -> neo4j.Driver:
    with map_neo4j_errors():
        return neo4j.GraphDatabase.driver(
            uri,
            auth=(user, password),
            connection_timeout=timeout_s,
            connection_acquisition_timeout=timeout_s,
            max_transaction_retry_time=timeout_s,
        )
