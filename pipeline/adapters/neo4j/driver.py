"""Neo4j driver construction and the translation of neo4j errors.

Works against Neo4j 5 and the local Bolt server (ArcadeDB); the database name is always
passed explicitly, as ArcadeDB requires. ArcadeDB reports two transactions that MERGE
the same new unique key as ``ConstraintError`` (Neo4j serialises them instead), which the
driver does not retry: :func:`retry_constraint_races` runs the work again, since the
repeated MERGE then finds the node the other transaction created.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import neo4j
from neo4j import exceptions as neo4j_errors

from pipeline.errors import ConfigError, InvalidInputError, StoreUnavailableError

STORE = "graph"
CONSTRAINT_RACE_ATTEMPTS = 5
CONSTRAINT_RACE_BACKOFF_S = 0.05

T = TypeVar("T")


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


def retry_constraint_races(
    work: Callable[[], T],
    *,
    attempts: int = CONSTRAINT_RACE_ATTEMPTS,
    backoff_s: float = CONSTRAINT_RACE_BACKOFF_S,
    store: str = STORE,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Run ``work`` (a whole idempotent transaction) again after a ConstraintError.

    Waits a jittered, doubling ``backoff_s`` between attempts; when every attempt lost a
    race the store is contended, so that surfaces as StoreUnavailableError (transient),
    never as bad input. Call it inside :func:`map_neo4j_errors` for the other errors.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except neo4j_errors.ConstraintError as exc:
            if attempt >= attempts:
                raise StoreUnavailableError(
                    store, f"unique key race still lost after {attempts} attempts: {exc.message}"
                ) from exc
            sleep(backoff_s * 2 ** (attempt - 1) * (0.5 + rng()))
    raise ValueError(f"attempts must be at least 1, got {attempts}")
