"""The per-process resources that tasks use, installed by the workers' composition root.

Tasks never build drivers, pools or the model themselves: workers/ builds them after the
fork (``worker_process_init``) or at start-up (the embed worker's model) and installs
them here; tests install fakes the same way.

Must not import: workers/, api/, cli/, drivers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.settings import QuarrySettings
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.analysis.tokens import TokenCounter
from pipeline.flow import Outgoing
from pipeline.ports import (
    BlobStore,
    CircuitBreaker,
    DeadLetters,
    GraphStore,
    InFlight,
    QuotaStore,
    RepoDeletionStore,
    SourceFetcher,
    UploadStore,
    VectorStore,
    WebhookKeyStore,
    WebhookSender,
)
from pipeline.stages.backfill import LiveModels
from pipeline.stages.embed import CacheLookup
from pipeline.stages.embedding import EmbeddingService
from pipeline.stages.indexing import JobContext


@dataclass(frozen=True, slots=True)
class CpuProfile:
    """What the ``cpu`` profile's tasks use: ingest, chunk, write, commit, webhooks, sweep."""

    vectors: VectorStore
    graph: GraphStore
    blobs: BlobStore
    deletions: RepoDeletionStore
    uploads: UploadStore
    fetcher: SourceFetcher
    in_flight: InFlight
    chunking: ChunkingOptions
    counter: TokenCounter
    webhooks: WebhookSender
    webhook_keys: WebhookKeyStore
    quotas: QuotaStore | None = None  # the ingest's files-per-day charge (pipeline.quotas)
    # The chunk stage's look into the embedding cache (pipeline.stages.backfill
    # .CachedVectors); None: every file goes through the embed stage.
    cached: CacheLookup | None = None


@dataclass(frozen=True, slots=True)
class EmbedProfile:
    """What the ``embed`` profile's task uses: the configured model's service and, with
    a model registry, the live models' (pipeline.stages.backfill.LiveModels)."""

    embedding: EmbeddingService
    models: LiveModels | None = None


@dataclass(slots=True)
class Resources:
    """What one worker process holds: what every profile has, and the parts of the
    profiles it runs (``all`` runs both)."""

    settings: QuarrySettings
    jobs: JobContext | None = None
    dead_letters: DeadLetters | None = None
    breakers: Mapping[str, CircuitBreaker] = field(default_factory=dict)
    webhook_secret: str = ""
    cpu: CpuProfile | None = None
    embed: EmbedProfile | None = None


_current: Resources | None = None


def install(resources: Resources | None) -> None:
    """Make ``resources`` this process's (None uninstalls)."""
    global _current  # noqa: PLW0603 (one set of resources per process)
    _current = resources


def current() -> Resources:
    """This process's resources; a RuntimeError if the worker did not install any."""
    if _current is None:
        raise RuntimeError("no worker resources installed in this process")
    return _current


def cpu_profile() -> tuple[Resources, CpuProfile]:
    """This process's resources and its cpu profile; a RuntimeError where it runs none."""
    resources = current()
    if resources.cpu is None:
        raise RuntimeError("this worker does not run the `cpu` profile's tasks")
    return resources, resources.cpu


def embed_profile() -> tuple[Resources, EmbedProfile]:
    """This process's resources and its embed profile; a RuntimeError where it runs none."""
    resources = current()
    if resources.embed is None:
        raise RuntimeError("this worker has no embedding model (run the `embed` profile)")
    return resources, resources.embed


def job_resources() -> tuple[Resources, JobContext]:
    """This process's resources and job context; a RuntimeError names the profile that
    has them where this worker has none."""
    resources = current()
    if resources.jobs is None:
        raise RuntimeError("this worker has no job stores (run the `cpu` profile)")
    return resources, resources.jobs


def send_outgoing(app: Any, outgoing: Outgoing) -> None:
    """Hand a stage's outgoing messages to the stage the graph names."""
    send_tasks(app, outgoing.stage.task, outgoing.messages)


def send_tasks(app: Any, task_name: str, kwargs_list: Sequence[Mapping[str, Any]]) -> None:
    """Enqueue tasks through this process's job context (admission, waiting while the
    queue is full), or straight through Celery where a worker has none (tests)."""
    jobs = _current.jobs if _current is not None else None
    if jobs is not None:
        jobs.send(task_name, kwargs_list)
        return
    for kwargs in kwargs_list:
        app.send_task(task_name, kwargs=dict(kwargs))
