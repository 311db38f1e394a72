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
    CircuitBreaker,
    DeadLetters,
    GraphStore,
    InFlight,
    SourceFetcher,
    VectorStore,
    WebhookSender,
)
from pipeline.stages.embedding import EmbeddingService
from pipeline.stages.indexing import JobContext


@dataclass(slots=True)
class Resources:
    """What one worker process holds. A profile that does not need a part leaves it None."""

    settings: QuarrySettings
    embedding: EmbeddingService | None = None
    vectors: VectorStore | None = None
    graph: GraphStore | None = None
    dead_letters: DeadLetters | None = None
    breakers: Mapping[str, CircuitBreaker] = field(default_factory=dict)
    jobs: JobContext | None = None
    fetcher: SourceFetcher | None = None
    in_flight: InFlight | None = None
    chunking: tuple[ChunkingOptions, TokenCounter] | None = None
    webhooks: WebhookSender | None = None
    webhook_secret: str = ""


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
