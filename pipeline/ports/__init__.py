"""Ports: the Protocols the domain needs from the outside world.

Each port has a real adapter under ``pipeline/adapters/<technology>/`` and a behaving
fake under ``pipeline/adapters/fakes/``; one contract suite runs over both. By concept:
``index`` (model, caches, vector, graph and search stores), ``jobs`` (job records,
board, queues, dead letters) and ``edges`` (migrations, breakers, webhooks, sources).

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from pipeline.ports.edges import (
    BlobStore,
    CircuitBreaker,
    CredentialStore,
    MigrationTarget,
    PushHookStore,
    SourceFetcher,
    UploadStore,
    WebhookKeyStore,
    WebhookSender,
)
from pipeline.ports.index import (
    Embedder,
    EmbeddingCache,
    GraphStore,
    QueryEmbeddingCache,
    SearchIndex,
    VectorStore,
)
from pipeline.ports.jobs import (
    Admission,
    DeadLetters,
    InFlight,
    JobBoard,
    JobStore,
    RepoDeletionStore,
    SnapshotStore,
    TokenStore,
)
from pipeline.ports.quotas import QuotaStore

__all__ = [
    "Admission",
    "BlobStore",
    "CircuitBreaker",
    "CredentialStore",
    "DeadLetters",
    "Embedder",
    "EmbeddingCache",
    "GraphStore",
    "InFlight",
    "JobBoard",
    "JobStore",
    "MigrationTarget",
    "PushHookStore",
    "QueryEmbeddingCache",
    "QuotaStore",
    "RepoDeletionStore",
    "SearchIndex",
    "SnapshotStore",
    "SourceFetcher",
    "TokenStore",
    "UploadStore",
    "VectorStore",
    "WebhookKeyStore",
    "WebhookSender",
]
