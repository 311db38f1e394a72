"""QuarrySettings: every group of fields in one frozen model, and the checks across them.

The fields are declared by group (config/settings/services.py, jobs.py, embedding.py,
search.py, sources.py, quotas.py) and inherited here, so a setting stays flat (``settings.<field>``,
env var ``QUARRY_<FIELD>``) and the docs table keeps the groups' order. Every validator
is here, beside the fields of every group it may read.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.queues import CHUNK, EMBED, INGEST, WEBHOOK, WORKER_PROFILES, WRITE
from config.settings.embedding import EmbeddingFields
from config.settings.jobs import JobFields, StoreFields, WorkerFields
from config.settings.quotas import QuotaFields
from config.settings.search import SearchFields
from config.settings.services import DataFields, EndpointFields, FlowerFields, StackFields
from config.settings.sources import WEBHOOK_ADDRESS_KINDS, SourceFields, WebhookFields

SOFT_LIMIT_SHARE = 2 / 3  # the soft time limit of a task, as a share of its hard limit
ENV_PREFIX = "QUARRY_"
SERVICE_PORT_FIELDS = (
    "stack_redis_port",
    "stack_postgres_port",
    "stack_bolt_port",
    "stack_graph_http_port",
    "stack_api_port",
    "stack_flower_port",
)
# Worker metrics ports: 0 turns a worker's metrics endpoint off.
METRICS_PORT_FIELDS = ("worker_metrics_port_cpu", "worker_metrics_port_embed")
URL_FIELDS = ("redis_url", "postgres_dsn", "neo4j_uri", "api_url")


# The groups in reverse: pydantic collects fields from the last base first, so the model
# (and the docs table) lists them data, endpoints, stack, workers ... flower.
class QuarrySettings(
    FlowerFields,
    WebhookFields,
    SourceFields,
    QuotaFields,
    JobFields,
    SearchFields,
    StoreFields,
    EmbeddingFields,
    WorkerFields,
    StackFields,
    EndpointFields,
    DataFields,
    BaseSettings,
):
    """All of Quarry's settings. Env var = ``QUARRY_`` + the upper-cased field name."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    def worker_metrics_port(self, profile: str) -> int:
        """The metrics port of a worker profile (0: off); ``all`` uses the ``cpu`` one."""
        return (
            self.worker_metrics_port_embed if profile == "embed" else self.worker_metrics_port_cpu
        )

    def queue_bounds(self) -> dict[str, int]:
        """Each stage queue's bound, by queue name."""
        return {
            INGEST: self.queue_bound_ingest,
            CHUNK: self.queue_bound_chunk,
            EMBED: self.queue_bound_embed,
            WRITE: self.queue_bound_write,
            WEBHOOK: self.queue_bound_webhook,
        }

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("source_allowed_roots")
    @classmethod
    def _absolute_roots(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for root in value:
            if not root.is_absolute():
                raise ValueError(f"{str(root)!r} is not an absolute path")
        return value

    @field_validator(*SERVICE_PORT_FIELDS)
    @classmethod
    def _valid_port(cls, value: int) -> int:
        if not 1024 <= value <= 65535:
            raise ValueError("must be a port between 1024 and 65535")
        return value

    @field_validator(*METRICS_PORT_FIELDS)
    @classmethod
    def _valid_port_or_off(cls, value: int) -> int:
        if value != 0 and not 1024 <= value <= 65535:
            raise ValueError("must be 0 (off) or a port between 1024 and 65535")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        return _require_scheme(value, ("redis", "rediss", "unix"))

    @field_validator("postgres_dsn")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        return _require_scheme(value, ("postgresql", "postgres"))

    @field_validator("neo4j_uri")
    @classmethod
    def _bolt_scheme(cls, value: str | None) -> str | None:
        schemes = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
        return _require_scheme(value, schemes)

    @field_validator("api_url")
    @classmethod
    def _http_scheme(cls, value: str | None) -> str | None:
        return _require_scheme(value, ("http", "https"))

    @field_validator(
        "stack_workers", "webhook_allow_addresses", "source_allowed_roots", mode="before"
    )
    @classmethod
    def _split_workers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("stack_workers")
    @classmethod
    def _known_profiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for profile in value:
            if profile not in WORKER_PROFILES:
                known = ", ".join(sorted(WORKER_PROFILES))
                raise ValueError(f"unknown worker profile {profile!r} (known: {known})")
        return value

    @field_validator("webhook_allow_addresses")
    @classmethod
    def _known_address_kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for kind in value:
            if kind not in WEBHOOK_ADDRESS_KINDS:
                known = ", ".join(WEBHOOK_ADDRESS_KINDS)
                raise ValueError(f"unknown address kind {kind!r} (known: {known})")
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> QuarrySettings:
        seen: dict[int, str] = {}
        for name in (*SERVICE_PORT_FIELDS, *METRICS_PORT_FIELDS):
            port = getattr(self, name)
            if port == 0:
                continue
            if port in seen:
                raise ValueError(f"port {port} is used by both {seen[port]} and {name}")
            seen[port] = name
        return self

    @property
    def task_soft_time_limit_s(self) -> float:
        """The soft limit: a task gets SoftTimeLimitExceeded (and may clean up) here."""
        return self.task_time_limit_s * SOFT_LIMIT_SHARE

    @model_validator(mode="after")
    def _task_timing(self) -> QuarrySettings:
        if self.broker_visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError(
                f"broker_visibility_timeout_s ({self.broker_visibility_timeout_s:g}) must be "
                f"above task_time_limit_s ({self.task_time_limit_s:g}), or a running task "
                "would be delivered a second time"
            )
        if self.webhook_retry_cap_s + self.task_time_limit_s >= self.broker_visibility_timeout_s:
            # A retry waits, unacknowledged, in the worker that took it (Celery's countdown);
            # Redis delivers a message unacknowledged for longer than the visibility
            # timeout again, so a longer wait would send the event twice.
            raise ValueError(
                f"webhook_retry_cap_s ({self.webhook_retry_cap_s:g}) plus task_time_limit_s "
                f"({self.task_time_limit_s:g}) must be below broker_visibility_timeout_s "
                f"({self.broker_visibility_timeout_s:g}), or a waiting webhook retry would "
                "be delivered a second time"
            )
        if self.queue_wait_s >= self.task_soft_time_limit_s:
            raise ValueError(
                f"queue_wait_s ({self.queue_wait_s:g}) must be below the soft time limit "
                f"({self.task_soft_time_limit_s:g} s, 2/3 of task_time_limit_s), or a stage "
                "waiting for room on a full queue would be stopped mid-wait"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges file < environment itself and passes the result as
        # kwargs, so that it can name the source of a bad value and take an explicit env.
        return (init_settings,)


def _require_scheme(value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in schemes:
        raise ValueError(f"must start with one of {', '.join(s + '://' for s in schemes)}")
    return value
