"""Endpoint resolution: configured services win, the local stack fills in the rest."""

from __future__ import annotations

from pathlib import Path

from config.endpoints import StackSecrets, resolve_endpoints
from config.settings import load_settings

SECRETS = StackSecrets(graph_password="g-pw", api_token="tok", flower_password="f-pw")


def test_unset_endpoints_are_the_local_stack_with_its_generated_credentials(
    tmp_path: Path,
) -> None:
    settings = load_settings(env={"QUARRY_DATA_DIR": str(tmp_path)})
    endpoints = resolve_endpoints(settings, SECRETS)
    assert endpoints.redis_url == "redis://127.0.0.1:6390/0"
    assert endpoints.redis_local and endpoints.postgres_local and endpoints.graph_local
    assert endpoints.neo4j_password == "g-pw"
    assert endpoints.api_token == "tok"
    assert endpoints.neo4j_database == "graph"


def test_configured_external_services_are_not_the_stacks_to_start(tmp_path: Path) -> None:
    settings = load_settings(
        env={
            "QUARRY_DATA_DIR": str(tmp_path),
            "QUARRY_REDIS_URL": "redis://:pw@redis.internal:6379/2",
            "QUARRY_POSTGRES_DSN": "postgresql://q:pw@db.internal:5432/quarry",
            "QUARRY_NEO4J_URI": "neo4j://graph.internal:7687",
            "QUARRY_NEO4J_PASSWORD": "explicit",
        }
    )
    endpoints = resolve_endpoints(settings, SECRETS)
    assert not (endpoints.redis_local or endpoints.postgres_local or endpoints.graph_local)
    assert endpoints.neo4j_password == "explicit"
    shown = endpoints.redacted()
    assert shown["redis"] == "redis://:***@redis.internal:6379/2"
    assert shown["postgres"] == "postgresql://q:***@db.internal:5432/quarry"


def test_exported_local_urls_still_count_as_the_local_stack(tmp_path: Path) -> None:
    """`eval "$(quarry dev env)"` then `quarry dev up` manages the same stack."""
    settings = load_settings(
        env={
            "QUARRY_DATA_DIR": str(tmp_path),
            "QUARRY_REDIS_URL": "redis://127.0.0.1:6390/0",
            "QUARRY_NEO4J_URI": "bolt://127.0.0.1:7687",
        }
    )
    endpoints = resolve_endpoints(settings, SECRETS)
    assert endpoints.redis_local and endpoints.graph_local


def test_without_a_local_stack_there_are_no_credentials_to_fall_back_on(tmp_path: Path) -> None:
    endpoints = resolve_endpoints(load_settings(env={"QUARRY_DATA_DIR": str(tmp_path)}))
    assert endpoints.neo4j_password == ""
    assert endpoints.api_token == ""
