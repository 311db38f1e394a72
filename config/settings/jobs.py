"""Settings fields: how work runs: worker processes, store batch sizes and breakers,
chunking, batches of files, bounded queues, task time limits and the job sweeper.

A group of :class:`config.settings.QuarrySettings`, whose fields they are (flat:
``settings.<field>``, env var ``QUARRY_<FIELD>``); validators live on that class.

Must not import: anything of Quarry but config (config is the leaf).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

Port = int


class WorkerFields(BaseModel):
    """Settings: workers."""

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


class StoreFields(BaseModel):
    """Settings: stores."""

    breaker_fail_max: int = Field(
        5, ge=1, le=1000, description="Consecutive store failures that open its circuit breaker."
    )
    breaker_reset_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="How long an open breaker refuses calls before a trial."
    )
    breaker_refresh_s: float = Field(
        0.5,
        ge=0,
        le=60,
        description="After a store call that succeeded through the breaker's shared state in "
        "Redis, how long a worker process calls that store with no Redis round trip (another "
        "process's open breaker is seen at most this late; 0: read Redis on every call).",
    )
    graph_batch_size: int = Field(
        500, ge=1, le=100_000, description="Rows per UNWIND batch in graph writes."
    )
    graph_task_files: int = Field(
        200,
        ge=1,
        le=10_000,
        description="Files per graph-stage task: each resolves and writes this many file graphs.",
    )
    write_max_retries: int = Field(
        20,
        ge=0,
        le=1000,
        description="Retries of a write on a transient error before it goes to the dead letters.",
    )
    vector_index_defer_max_files: int = Field(
        200,
        ge=0,
        le=1_000_000,
        description="Jobs of at most this many files to index write their rows out of the "
        "HNSW index, and the vector index task adds them after the job (a small job is done "
        "sooner; search scans such rows exactly meanwhile); larger jobs pay the index in their "
        "writes. 0: never.",
    )
    vector_index_batch_rows: int = Field(
        128,
        ge=1,
        le=100_000,
        description="Rows one transaction of the vector index task adds to the HNSW index "
        "(rows the write stage wrote wait for it, searched exactly meanwhile).",
    )
    vector_index_step_s: float = Field(
        2.0,
        gt=0,
        le=600,
        description="Longest run of one vector index task before it hands the rest to the "
        "next (other write-queue tasks go between).",
    )
    delete_batch_rows: int = Field(
        5000,
        ge=1,
        le=100_000,
        description="Rows one transaction of a repository deletion removes (chunks, files, "
        "symbols, jobs...); graph nodes go graph_batch_size at a time.",
    )
    delete_stall_s: float = Field(
        120.0,
        ge=1,
        description="How long a repository deletion may go without progress before the "
        "sweeper sends it again (its worker died); a batch that takes longer is run twice, "
        "which is harmless.",
    )


class JobFields(BaseModel):
    """Settings: jobs: chunking, batching, bounded queues."""

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
    job_ingest_slice_files: int = Field(
        10_000,
        ge=1,
        description="Files one ingest call sends for chunking; a larger job's rest goes a "
        "slice at a time (quarry.ingest.more), so no call enqueues a whole repository.",
    )
    job_window_files: int = Field(
        64,
        ge=0,
        le=1_000_000,
        description="Fair sharing: the most files of one job in flight (sent for chunking, "
        "not yet written); its next slice goes when its files settle. Other tenants' work "
        "then waits behind at most this much of a large job in every stage (raise it where "
        "the embed stage is much faster than a release's round trip, e.g. a GPU). 0: none.",
    )
    job_sweep_interval_s: float = Field(
        15.0,
        ge=0,
        description="How often the cpu worker looks for stalled jobs (no message held by "
        "the broker, no progress for job_stall_s) and sends them on; 0 turns it off.",
    )
    job_stall_s: float = Field(
        30.0,
        ge=1,
        description="How long a queued or running job may go without progress and without "
        "any message on a queue before the sweeper sends its remaining work again (a job at "
        "work always has a message on a queue or held by a worker).",
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
