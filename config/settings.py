"""Typed settings: the ONLY code in Quarry that reads ``os.environ``.

Every setting is a field of :class:`QuarrySettings`, documented here with its default;
``quarry config docs`` renders this module as the table in docs/configuration.md.
Sources, highest priority first: keyword arguments, ``QUARRY_*`` environment variables,
files in ``QUARRY_SECRETS_DIR`` named after a setting (Docker secrets), the TOML config
file (``QUARRY_CONFIG_FILE``, else ``./quarry.toml`` if it exists), defaults. An unknown
key or an invalid value raises :class:`ConfigError` with one line that names the key and
the value; secret values are never echoed.

Must not import: anything of Quarry but ``config`` and ``pipeline.errors`` (config is the leaf).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.errors import ConfigError
from config.queues import CHUNK, EMBED, INGEST, WEBHOOK, WORKER_PROFILES, WRITE
from config.redaction import redact_url

SOFT_LIMIT_SHARE = 2 / 3  # the soft time limit of a task, as a share of its hard limit

ENV_PREFIX = "QUARRY_"
CONFIG_FILE_ENV = "QUARRY_CONFIG_FILE"
SECRETS_DIR_ENV = "QUARRY_SECRETS_DIR"
DEFAULT_CONFIG_FILE = "quarry.toml"
# prometheus-client's multiprocess mode: every process of a worker (the main process and
# its prefork children) writes its samples to files in this folder, and the main process
# serves their sum. The library reads the variable when it is first imported.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

Port = int
_PORT_FIELDS = (
    "stack_redis_port",
    "stack_postgres_port",
    "stack_bolt_port",
    "stack_graph_http_port",
    "stack_api_port",
    "stack_flower_port",
)
# Worker metrics ports: 0 turns a worker's metrics endpoint off.
_METRICS_PORT_FIELDS = ("worker_metrics_port_cpu", "worker_metrics_port_embed")
_URL_FIELDS = ("redis_url", "postgres_dsn", "neo4j_uri", "api_url")


WEBHOOK_ADDRESS_KINDS = (
    "loopback",
    "private",
    "link-local",
    "reserved",
    "multicast",
    "unspecified",
)


class QuarrySettings(BaseSettings):
    """All of Quarry's settings. Env var = ``QUARRY_`` + the upper-cased field name."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    # --- data and logs ---------------------------------------------------------------
    data_dir: Path = Field(
        Path(".quarry"),
        description="Folder that holds all local state: services' data, logs, pid files, clones.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of log lines."
    )
    log_json: bool = Field(False, description="Write log lines as JSON objects.")

    # --- service endpoints (unset: use the local stack's) ----------------------------
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

    # --- the local development stack (`quarry dev up`) -------------------------------
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

    # --- workers --------------------------------------------------------------------
    worker_cpu_concurrency: int = Field(
        2, ge=1, le=64, description="Processes of a `cpu` worker (ingest, chunk, write, webhook)."
    )
    worker_embed_concurrency: int = Field(
        1, ge=1, le=16, description="Processes of an `embed` worker (one model per process)."
    )
    worker_metrics_port_cpu: int = Field(
        9101,
        description="Port of the Prometheus `/metrics` endpoint of a `cpu` (or `all`) worker, "
        "served by its main process for all its pool processes (0: off).",
    )
    worker_metrics_port_embed: int = Field(
        9102,
        description="Port of the Prometheus `/metrics` endpoint of an `embed` worker (0: off).",
    )
    worker_metrics_bind_host: str = Field(
        "127.0.0.1",
        description="Address the workers' metrics endpoints listen on (`0.0.0.0` in containers).",
    )

    # --- embedding ------------------------------------------------------------------
    embed_model: str = Field(
        "all-MiniLM-L6-v2",
        min_length=1,
        description=(
            "Embedding model: `all-MiniLM-L6-v2` (bundled, loaded offline) or the path of a"
            " sentence-transformers model folder."
        ),
    )
    embed_backend: Literal["torch", "onnx-int8"] = Field(
        "torch",
        description=(
            "`torch` (CUDA fp16 or CPU fp32) or `onnx-int8` (CPU: the model exported to ONNX"
            " and quantised to int8; its vectors carry another model id)."
        ),
    )
    embed_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Embedding device; `auto` takes CUDA when present, else the CPU."
    )
    embed_batch_tokens: int | None = Field(
        None,
        ge=256,
        le=1_048_576,
        description=(
            "Token budget of one device batch. Unset: 65536 on a GPU, a quarter of it on the CPU."
        ),
    )
    embed_batch_max_chunks: int = Field(
        1024, ge=1, le=8192, description="Most chunks in one device batch (a GPU cap)."
    )
    embed_flush_messages: int = Field(
        64,
        ge=1,
        le=4096,
        description="Embed messages buffered before a flush (each holds one file's chunks).",
    )
    embed_flush_interval_s: float = Field(
        0.05, gt=0, le=10, description="Longest wait before a partial embed batch is flushed."
    )
    embed_torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Torch threads per embed process. Unset: the cores divided by the processes.",
    )
    embed_idle_unload_s: float = Field(
        0, ge=0, description="Unload the model after this long unused (0: keep it loaded)."
    )
    query_cache_ttl_s: int = Field(
        86400, ge=0, description="Lifetime of a cached query embedding in Redis (0: no cache)."
    )

    # --- stores ---------------------------------------------------------------------
    breaker_fail_max: int = Field(
        5, ge=1, le=1000, description="Consecutive store failures that open its circuit breaker."
    )
    breaker_reset_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="How long an open breaker refuses calls before a trial."
    )
    graph_batch_size: int = Field(
        500, ge=1, le=100_000, description="Rows per UNWIND batch in graph writes."
    )
    write_max_retries: int = Field(
        20,
        ge=0,
        le=1000,
        description="Retries of a write on a transient error before it goes to the dead letters.",
    )

    # --- search -----------------------------------------------------------------------
    search_ef_search: int = Field(
        100,
        ge=1,
        le=1000,
        description="HNSW candidate list of a vector search (pgvector hnsw.ef_search); raised "
        "to the hits asked for when fewer.",
    )
    search_exact_max_rows: int = Field(
        20_000,
        ge=0,
        description="Up to this many chunk rows in the table, vector search scans exactly "
        "instead of using the HNSW index.",
    )
    search_max_lexical_matches: int = Field(
        2_000,
        ge=1,
        description="Most full-text matches ranked by BM25 per query: bounds the cost of "
        "common words (bench/results/search.md: at 1M chunks P95 65 ms at 2,000, 308 ms at "
        "10,000).",
    )
    search_rrf_k: int = Field(
        10,
        ge=1,
        le=10_000,
        description="The k of reciprocal rank fusion, 1 / (k + rank): smaller trusts the top "
        "ranks more (10 beat the usual 60 on `quarry eval`, bench/results/eval.md).",
    )
    search_weight_vector: float = Field(
        1.0, ge=0, le=100, description="Weight of the vector retriever in the fusion."
    )
    search_weight_lexical: float = Field(
        1.0, ge=0, le=100, description="Weight of the full-text retriever in the fusion."
    )
    query_embed_threads: int = Field(
        1, ge=1, le=64, description="Threads of the API's query embedder (onnxruntime)."
    )
    search_warm_on_start: bool = Field(
        True,
        description="Load the API's query embedder when the API starts, not on the first search.",
    )

    # --- jobs: chunking, batching, bounded queues ---------------------------------------
    chunk_max_tokens: int = Field(
        256,
        ge=32,
        le=8192,
        description="Largest chunk in word-pieces: the embedding model's window (256 for MiniLM).",
    )
    chunk_max_file_bytes: int = Field(
        1_000_000, ge=1, description="Files larger than this are skipped (`too_large`)."
    )
    job_batch_files: int = Field(32, ge=1, le=10_000, description="Most files in one chunk task.")
    job_batch_bytes: int = Field(
        1_000_000, ge=1, description="About the most bytes of files in one chunk task."
    )
    job_sweep_interval_s: float = Field(
        30.0,
        ge=0,
        description="How often the cpu worker looks for stalled jobs (no message held by "
        "the broker, no progress for job_stall_s) and sends them on; 0 turns it off.",
    )
    job_stall_s: float = Field(
        120.0,
        ge=1,
        description="How long a queued or running job may go without progress and without "
        "any message on a queue before the sweeper sends its remaining work again.",
    )
    job_max_recoveries: int = Field(
        3,
        ge=0,
        le=100,
        description="How many times the sweeper sends a stalled job on before it fails it.",
    )
    queue_bound_ingest: int = Field(
        1000, ge=1, description="Most waiting messages on the ingest queue (one per job)."
    )
    queue_bound_chunk: int = Field(
        10_000, ge=1, description="Most waiting messages on the chunk queue (file batches)."
    )
    queue_bound_embed: int = Field(
        20_000, ge=1, description="Most waiting messages on the embed queue (one per file)."
    )
    queue_bound_write: int = Field(
        20_000, ge=1, description="Most waiting messages on the write queue."
    )
    queue_bound_webhook: int = Field(
        10_000, ge=1, description="Most waiting messages on the webhook queue."
    )
    queue_wait_s: float = Field(
        300.0,
        gt=0,
        description="How long a stage waits for room on a full queue before it retries later.",
    )
    task_time_limit_s: float = Field(
        900.0,
        ge=10,
        le=86400,
        description="Hard time limit of one task; its worker child is killed past it "
        "(the soft limit, which lets the task clean up, is two thirds of it).",
    )
    broker_visibility_timeout_s: float = Field(
        3600.0,
        ge=10,
        le=7 * 86400,
        description="How long Redis waits before it delivers again a task whose worker "
        "died without a word (a killed main process); must exceed task_time_limit_s.",
    )

    # --- sources ------------------------------------------------------------------------
    source_max_archive_bytes: int = Field(
        200 * 2**20, ge=1, description="Largest uploaded .tar.gz accepted (compressed bytes)."
    )
    source_max_extracted_bytes: int = Field(
        2 * 2**30, ge=1, description="Most bytes an archive may extract to."
    )
    source_max_members: int = Field(
        200_000, ge=1, description="Most members (files and folders) of an archive."
    )
    source_clone_timeout_s: float = Field(
        300.0, gt=0, description="Time limit of a shallow git clone."
    )
    source_allow_file_urls: bool = Field(
        False,
        description="Accept local git repositories as clone sources (`file://`); for tests.",
    )
    source_allowed_roots: tuple[Path, ...] = Field(
        (),
        description="Folders (comma-separated, absolute) under which a job may name a local "
        "folder, archive or `file://` repository. Empty: no local path is accepted. The data "
        "folder and the secrets folder are refused whatever this says.",
    )

    # --- webhooks -----------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of webhook signatures. Unset: the local stack's own.",
    )
    webhook_allow_addresses: tuple[str, ...] = Field(
        (),
        description="Address kinds callbacks may resolve to anyway: loopback, private, link-local.",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=120, description="Time limit of one delivery.")
    webhook_max_attempts: int = Field(
        6,
        ge=1,
        le=50,
        description="Deliveries tried per event (timeouts, 5xx, 429) before giving up.",
    )

    # --- flower ---------------------------------------------------------------------
    flower_user: str = Field("quarry", min_length=1, description="Flower basic-auth user.")
    flower_password: SecretStr | None = Field(
        None, description="Flower basic-auth password. Unset: the local stack's generated one."
    )
    flower_bind_host: str = Field(
        "127.0.0.1", description="Address Flower listens on (`0.0.0.0` in containers)."
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

    @field_validator(*_PORT_FIELDS)
    @classmethod
    def _valid_port(cls, value: int) -> int:
        if not 1024 <= value <= 65535:
            raise ValueError("must be a port between 1024 and 65535")
        return value

    @field_validator(*_METRICS_PORT_FIELDS)
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
        for name in (*_PORT_FIELDS, *_METRICS_PORT_FIELDS):
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


def field_names() -> tuple[str, ...]:
    return tuple(QuarrySettings.model_fields)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def is_secret(field: str) -> bool:
    annotation = str(QuarrySettings.model_fields[field].annotation)
    return "SecretStr" in annotation


def shown_value(field: str, value: object) -> str:
    """How a setting's value may appear in a message: secrets hidden, URLs redacted."""
    if is_secret(field):
        return "'<hidden>'"
    if field in _URL_FIELDS and isinstance(value, str):
        return repr(redact_url(value))
    return repr(value)


def load_settings(
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    **overrides: Any,
) -> QuarrySettings:
    """Build the settings from ``env`` (default ``os.environ``) and the config file.

    Raises :class:`ConfigError` with one line naming the first bad key and its value.
    """
    environ = dict(os.environ if env is None else env)
    _reject_unknown_env(environ)
    path = config_file or _config_file_path(environ)
    from_file = _read_config_file(path) if path is not None else {}
    from_file.update(_read_secrets_dir(environ))
    ours = {k.upper(): v for k, v in environ.items() if k.upper().startswith(ENV_PREFIX)}
    ours.pop(CONFIG_FILE_ENV, None)
    ours.pop(SECRETS_DIR_ENV, None)
    merged: dict[str, Any] = dict(from_file)
    merged.update({key[len(ENV_PREFIX) :].lower(): value for key, value in ours.items()})
    merged.update(overrides)
    try:
        return QuarrySettings(**merged)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, ours, from_file, path)) from None


def _reject_unknown_env(environ: Mapping[str, str]) -> None:
    known = {env_name(f) for f in field_names()} | {CONFIG_FILE_ENV, SECRETS_DIR_ENV}
    for key in sorted(environ):
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            raise ConfigError(f"unknown setting {key}{_suggestion(upper, known)}")


def _config_file_path(environ: Mapping[str, str]) -> Path | None:
    explicit = environ.get(CONFIG_FILE_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_FILE_ENV}={explicit!r}: no such file")
        return path
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_secrets_dir(environ: Mapping[str, str]) -> dict[str, str]:
    """Settings from files named after them, e.g. Docker secrets in ``/run/secrets``.

    ``QUARRY_SECRETS_DIR=/run/secrets`` and a file ``/run/secrets/neo4j_password`` set
    ``neo4j_password``; the environment still wins.
    """
    folder = environ.get(SECRETS_DIR_ENV)
    if not folder:
        return {}
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{SECRETS_DIR_ENV}={folder!r}: no such folder")
    values = {}
    for name in field_names():
        candidate = root / name
        if candidate.is_file():
            try:
                values[name] = candidate.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"secret file {candidate} is unreadable: {exc}") from None
    return values


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    known = set(field_names())
    for key in data:
        if key not in known:
            raise ConfigError(
                f"config file {path}: unknown setting {key!r}{_suggestion(key, known)}"
            )
    return data


def _suggestion(key: str, known: set[str]) -> str:
    match = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {match[0]}?)" if match else ""


def _one_line(
    exc: ValidationError,
    env: Mapping[str, str],
    from_file: Mapping[str, Any],
    path: Path | None,
) -> str:
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if field and env_name(field) in env:
            where, raw = env_name(field), env[env_name(field)]
        elif field and field in from_file:
            where, raw = f"{path}: {field}", from_file[field]
        elif field:
            where, raw = field, error.get("input")
        else:
            parts.append(f"invalid settings: {message}")
            continue
        parts.append(f"invalid setting {where}={shown_value(field, raw)}: {message}")
    return "; ".join(parts)


def settings_as_env(settings: QuarrySettings) -> dict[str, str]:
    """``QUARRY_*`` variables that rebuild ``settings`` in another process."""
    values: dict[str, str] = {}
    for name in field_names():
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        values[env_name(name)] = str(value)
    return values


def child_environment(settings: QuarrySettings, **extra: str) -> dict[str, str]:
    """The environment for a process the local stack starts: ours, with these settings.

    The settings are passed whole, so a child sees exactly what its parent resolved
    (including values that came from a config file or from keyword arguments).
    """
    # Each worker points prometheus-client at a folder of its own (prepare_worker_metrics);
    # the API and Flower are single processes and must not inherit one.
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(ENV_PREFIX) and k.upper() != METRICS_DIR_ENV
    }
    environ.update(settings_as_env(settings))
    environ.setdefault("PYTHONUNBUFFERED", "1")
    for name, value in WORKER_ENVIRONMENT.items():
        environ.setdefault(name, value)
    environ.update(extra)
    return environ


# Torch's OpenMP threads spin at a barrier after every op; on a small machine shared
# with the other stages a thread that is descheduled stalls the batch each time
# (bench/results/jobs.md: one chunk, 2 threads, one busy core: 112-182 ms median, up to
# 840 ms; passive waiting: 16-23 ms, as fast as alone, same bulk throughput). Defaults
# only: a value already in the environment wins.
WORKER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def prepare_worker_environment() -> None:
    """Set WORKER_ENVIRONMENT's defaults in this process, before torch is loaded."""
    for name, value in WORKER_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def protected_folders(settings: QuarrySettings) -> tuple[Path, ...]:
    """Folders no job may read, whatever the allowed roots say: the data folder (the
    stack's secrets, databases, run, upload and scratch folders), Docker's secrets
    folder and the secrets folder named by ``QUARRY_SECRETS_DIR``."""
    folders = [settings.data_dir, Path("/run/secrets")]
    secrets = os.environ.get(SECRETS_DIR_ENV)
    if secrets:
        folders.append(Path(secrets).expanduser().absolute())
    return tuple(folders)


def worker_metrics_dir(settings: QuarrySettings, profile: str) -> Path:
    """The multiprocess metrics folder of a worker profile, under the data folder."""
    return settings.data_dir / "metrics" / profile


def prepare_worker_metrics(settings: QuarrySettings, profile: str) -> Path:
    """Empty the worker's metrics folder and point prometheus-client at it.

    Must run before ``prometheus_client`` is first imported in this process; the pool
    children inherit the variable. Only ``*.db`` sample files are removed: the samples
    of a previous run of this worker, whose processes are gone.
    """
    folder = worker_metrics_dir(settings, profile)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[METRICS_DIR_ENV] = str(folder)
    return folder
