"""Where the services are: the configured endpoints, else the local stack's.

The local stack (``quarry dev up``) writes its generated credentials to
``<data_dir>/stack/secrets.json``; every process that is not told otherwise falls back
to them, so `quarry` commands work against the local stack with no variables set.

Must not import: anything of Quarry but config and pipeline.errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from config.errors import ConfigError
from config.redaction import redact_url
from config.settings import QuarrySettings

LOCAL_GRAPH_USER = "root"
LOCAL_GRAPH_DATABASE = "graph"
LOCAL_API_TENANT = "default"


@dataclass(frozen=True, slots=True)
class StackSecrets:
    """Credentials the local stack generated on its first start."""

    graph_password: str
    api_token: str
    flower_password: str
    # Added after the first stacks were made: an older secrets file gets one on `dev up`.
    webhook_secret: str = ""
    credentials_key: str = ""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Resolved connection details; ``*_local`` says whether the local stack owns it."""

    redis_url: str
    redis_local: bool
    postgres_dsn: str
    postgres_local: bool
    neo4j_uri: str
    neo4j_user: str
    neo4j_password: str
    neo4j_database: str
    graph_local: bool
    api_url: str
    api_token: str
    flower_url: str
    flower_user: str
    flower_password: str
    webhook_secret: str = ""
    credentials_key: str = ""

    def redacted(self) -> dict[str, str]:
        """URLs without passwords, for status lines and logs."""
        return {
            "redis": redact_url(self.redis_url),
            "postgres": redact_url(self.postgres_dsn),
            "graph": redact_url(self.neo4j_uri),
            "api": self.api_url,
            "flower": self.flower_url,
        }


def secrets_path(settings: QuarrySettings) -> Path:
    return settings.data_dir / "stack" / "secrets.json"


def read_stack_secrets(settings: QuarrySettings) -> StackSecrets | None:
    path = secrets_path(settings)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"stack secrets file {path} is unreadable: {exc}") from None
    try:
        return StackSecrets(
            graph_password=str(raw["graph_password"]),
            api_token=str(raw["api_token"]),
            flower_password=str(raw["flower_password"]),
            webhook_secret=str(raw.get("webhook_secret", "")),
            credentials_key=str(raw.get("credentials_key", "")),
        )
    except KeyError as exc:
        raise ConfigError(f"stack secrets file {path} lacks {exc.args[0]!r}") from None


def local_redis_url(settings: QuarrySettings) -> str:
    return f"redis://{settings.stack_host}:{settings.stack_redis_port}/0"


def local_postgres_dsn(settings: QuarrySettings) -> str:
    return f"postgresql://postgres@{settings.stack_host}:{settings.stack_postgres_port}/quarry"


def local_neo4j_uri(settings: QuarrySettings) -> str:
    return f"bolt://{settings.stack_host}:{settings.stack_bolt_port}"


def resolve_endpoints(settings: QuarrySettings, secrets: StackSecrets | None = None) -> Endpoints:
    """Configured endpoints win; the rest are the local stack's.

    A configured URL equal to the local stack's own address still counts as local, so
    that `eval "$(quarry dev env)"` followed by `quarry dev up` manages the same stack.
    """
    secrets = secrets if secrets is not None else read_stack_secrets(settings)
    redis_url = settings.redis_url or local_redis_url(settings)
    postgres_dsn = settings.postgres_dsn or local_postgres_dsn(settings)
    neo4j_uri = settings.neo4j_uri or local_neo4j_uri(settings)
    graph_local = _same_address(neo4j_uri, local_neo4j_uri(settings))

    def secret(configured: SecretStr | None, local: str | None) -> str:
        return configured.get_secret_value() if configured is not None else (local or "")

    return Endpoints(
        redis_url=redis_url,
        redis_local=_same_address(redis_url, local_redis_url(settings)),
        postgres_dsn=postgres_dsn,
        postgres_local=_same_address(postgres_dsn, local_postgres_dsn(settings)),
        neo4j_uri=neo4j_uri,
        neo4j_user=settings.neo4j_user or LOCAL_GRAPH_USER,
        neo4j_password=secret(settings.neo4j_password, secrets.graph_password if secrets else None),
        neo4j_database=settings.neo4j_database or LOCAL_GRAPH_DATABASE,
        graph_local=graph_local,
        api_url=settings.api_url or f"http://{settings.stack_host}:{settings.stack_api_port}",
        api_token=secret(settings.api_token, secrets.api_token if secrets else None),
        flower_url=f"http://{settings.stack_host}:{settings.stack_flower_port}",
        flower_user=settings.flower_user,
        flower_password=secret(
            settings.flower_password, secrets.flower_password if secrets else None
        ),
        webhook_secret=secret(settings.webhook_secret, secrets.webhook_secret if secrets else None),
        credentials_key=secret(
            settings.credentials_key, secrets.credentials_key if secrets else None
        ),
    )


def _same_address(url: str, local: str) -> bool:
    try:
        a, b = urlsplit(url), urlsplit(local)
        return (a.hostname, a.port) == (b.hostname, b.port) and a.hostname in {
            "127.0.0.1",
            "localhost",
        }
    except ValueError:
        return False
