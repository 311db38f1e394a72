"""Settings fields: where Quarry keeps its data and finds its services: the data
folder and logs, the stores' endpoints (unset: the local stack's), the local stack's
ports and Flower.

A group of :class:`config.settings.QuarrySettings`, whose fields they are (flat:
``settings.<field>``, env var ``QUARRY_<FIELD>``); validators live on that class.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

Port = int


class DataFields(BaseModel):
    """Settings: data and logs."""

    data_dir: Path = Field(
        Path(".quarry"),
        description="Folder that holds all local state: services' data, logs, pid files, clones.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of log lines."
    )
    log_json: bool = Field(False, description="Write log lines as JSON objects.")
    audit_log_file: Path | None = Field(
        None,
        description="The API's audit log: one JSON object a line for each request a token"
        " made with the write or admin scope, and each refused one (401, 403); never a token."
        " Unset: `<data_dir>/logs/audit.jsonl`.",
    )
    audit_log_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=0,
        description="Rotate the audit log past this size, keeping `audit_log_backups` files"
        " (`audit.jsonl.1` ...). 0: never rotate here; the file is reopened when moved away,"
        " for logrotate (`copytruncate` works too).",
    )
    audit_log_backups: int = Field(5, ge=0, le=1000, description="Rotated audit log files kept.")


class EndpointFields(BaseModel):
    """Settings: service endpoints (unset: use the local stack's)."""

    redis_url: str | None = Field(
        None,
        description="Redis for the Celery broker, queues and breaker state. "
        "Unset: the local stack's Redis.",
    )
    postgres_dsn: str | None = Field(
        None,
        description="PostgreSQL 16 + pgvector DSN. Unset: the local stack's PostgreSQL.",
    )
    neo4j_uri: str | None = Field(
        None, description="Bolt URI of Neo4j 5. Unset: the local stack's Bolt graph server."
    )
    neo4j_user: str | None = Field(
        None, description="Graph user. Unset: `root` for the local stack."
    )
    neo4j_password: SecretStr | None = Field(
        None, description="Graph password. Unset: the local stack's generated password."
    )
    neo4j_database: str | None = Field(
        None, description="Graph database name. Unset: `graph` for the local stack."
    )
    api_url: str | None = Field(
        None, description="Base URL of the Quarry API for the CLI. Unset: the local stack's."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token the CLI sends. Unset: the local stack's development token."
    )
    api_docs: bool = Field(
        True,
        description="Serve the API's OpenAPI document and Swagger UI (`/docs`, assets served"
        " locally) without a token; every call made from the page still needs one.",
    )


class StackFields(BaseModel):
    """Settings: the local development stack (`quarry dev up`)."""

    stack_host: Literal["127.0.0.1"] = Field(
        "127.0.0.1", description="Address every local service binds to (loopback only)."
    )
    stack_redis_port: Port = Field(6390, description="Local Redis port.")
    stack_postgres_port: Port = Field(5433, description="Local PostgreSQL port.")
    stack_bolt_port: Port = Field(7687, description="Local Bolt graph server port.")
    stack_graph_http_port: Port = Field(2480, description="Local graph server HTTP port.")
    stack_api_port: Port = Field(8080, description="Local Quarry API port.")
    stack_flower_port: Port = Field(5555, description="Local Flower port.")
    stack_graph_heap_mb: int = Field(
        1024, ge=256, le=65536, description="Java heap of the local graph server, in MiB."
    )
    stack_workers: tuple[str, ...] = Field(
        ("cpu", "embed"),
        description="Worker profiles the local stack runs (see `quarry worker --help`).",
    )
    stack_start_timeout_s: float = Field(
        90.0,
        gt=0,
        le=600,
        description="How long `quarry dev up` waits for a service to be healthy.",
    )
    stack_restart_backoff_max_s: float = Field(
        30.0, gt=0, le=600, description="Longest wait before the stack restarts a dead process."
    )


class FlowerFields(BaseModel):
    """Settings: flower."""

    flower_user: str = Field("quarry", min_length=1, description="Flower basic-auth user.")
    flower_password: SecretStr | None = Field(
        None, description="Flower basic-auth password. Unset: the local stack's generated one."
    )
    flower_bind_host: str = Field(
        "127.0.0.1", description="Address Flower listens on (`0.0.0.0` in containers)."
    )
