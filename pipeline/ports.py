"""Ports: the Protocols the domain needs from the outside world.

Each port has a real adapter and a behaving fake under ``pipeline/adapters``; one
contract suite runs over both.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from pipeline.jobs import (
    Job,
    JobError,
    JobRequest,
    JobSource,
    JobStatus,
    StoreWait,
    WebhookDelivery,
)
from pipeline.migration import AppliedMigration, Kind, Migration
from pipeline.models import (
    DeadLetter,
    FileGraph,
    FileVersion,
    GraphSymbol,
    Hit,
    RepoRef,
    StoredChunk,
    SymbolLink,
)
from pipeline.search.query import SearchRequest

T = TypeVar("T")


class MigrationTarget(Protocol):
    """A store that can hold migrations of one kind and records what it applied."""

    @property
    def kind(self) -> Kind:
        """Which migrations this store takes: ``sql`` or ``cypher``."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Exclude other runners for the duration of a run."""
        ...

    def applied(self) -> dict[int, AppliedMigration]:
        """Migrations recorded as applied, by version."""
        ...

    def apply(self, migration: Migration) -> None:
        """Apply one migration and record it (atomically where the store allows)."""
        ...


class Embedder(Protocol):
    """A text embedding model on one device.

    ``embed`` runs one device batch and returns one L2-normalised float32 row per text;
    it raises :class:`~pipeline.errors.EmbeddingOutOfMemoryError` when the device runs
    out of memory for that batch (the caller halves the batch and retries). Texts longer
    than ``max_tokens`` word-pieces are truncated by the model.
    """

    @property
    def model_id(self) -> str:
        """Names the vector space: the model and the numeric path (``...+onnx-int8``)."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector, read from the model."""
        ...

    @property
    def device(self) -> str:
        """Where the model runs, for metrics and logs (``cpu``, ``cuda:0 NVIDIA H200``)."""
        ...

    @property
    def max_tokens(self) -> int:
        """The model's window in word-pieces, special tokens included."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word-pieces of each text with the special tokens, before truncation."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One device batch: shape ``(len(texts), dimension)``, rows of unit length."""
        ...


class EmbeddingCache(Protocol):
    """Vectors keyed by (model id, content hash): identical content is embedded once."""

    def get_many(
        self, model_id: str, content_hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """The cached vectors among ``content_hashes``; misses are absent from the result."""
        ...

    def put_many(self, model_id: str, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        """Store vectors by content hash; storing one twice keeps the first (idempotent)."""
        ...


class QueryEmbeddingCache(Protocol):
    """Query vectors for search, kept for a limited time."""

    def get(self, model_id: str, query: str) -> npt.NDArray[np.float32] | None:
        """The cached vector of ``query``, or None."""
        ...

    def put(self, model_id: str, query: str, vector: npt.NDArray[np.float32]) -> None:
        """Cache the vector of ``query`` for the configured lifetime."""
        ...


class VectorStore(Protocol):
    """Chunks with their vectors and full-text, one repository at a time.

    A chunk row is keyed by (repository, file version, chunk id), so that the chunks
    of a file's new version are written beside the old ones and the old ones are
    removed when the job commits. Every call is scoped to one tenant's repository and
    runs in one transaction.
    """

    def ensure_repository(self, repo: RepoRef) -> None:
        """Create the tenant and the repository if they do not exist (idempotent)."""
        ...

    def upsert_chunks(self, repo: RepoRef, chunks: Sequence[StoredChunk]) -> int:
        """Insert or update ``chunks``; returns how many rows were written."""
        ...

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        """Delete every chunk of every version of ``paths``; returns rows deleted."""
        ...

    def retain_versions(self, repo: RepoRef, current: Mapping[str, str]) -> int:
        """Keep only chunks whose (path, file sha256) is in ``current``; returns rows deleted."""
        ...

    def file_versions(self, repo: RepoRef) -> dict[str, frozenset[str]]:
        """The file versions that have chunks: path -> file sha256s."""
        ...

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str, str]]:
        """Every stored chunk as (path, file sha256, chunk id)."""
        ...

    def delete_repository(self, repo: RepoRef) -> None:
        """Remove the repository's chunks (and the repository row)."""
        ...


class GraphStore(Protocol):
    """The code graph of repositories: files, symbols, chunks and their relations.

    Node ids start with the repository's ``RepoRef.key``. Writing a file replaces what
    the graph held of that path before (its symbols, chunks and outgoing edges), so a
    write replayed gives the same graph.
    """

    def write_files(self, repo: RepoRef, files: Sequence[FileGraph]) -> int:
        """Write each file's nodes and edges; returns the nodes plus edges written."""
        ...

    def delete_files(self, repo: RepoRef, paths: Sequence[str]) -> int:
        """Remove the files, their symbols and chunks, and all their edges."""
        ...

    def file_versions(self, repo: RepoRef) -> dict[str, str]:
        """path -> file sha256 of every file node of the repository."""
        ...

    def chunk_ids(self, repo: RepoRef) -> set[str]:
        """The ids of every chunk node of the repository."""
        ...

    def chunk_keys(self, repo: RepoRef) -> set[tuple[str, str]]:
        """(path, chunk id) of every chunk node of the repository."""
        ...

    def delete_repository(self, repo: RepoRef) -> None:
        """Remove every node of the repository."""
        ...

    def find_symbols(self, repo: RepoRef, name: str, limit: int) -> list[GraphSymbol]:
        """Symbols whose qualified name is ``name``, else whose short name is (at most
        ``limit``, sorted by qualified name)."""
        ...

    def symbol_links(self, repo: RepoRef, qualified_names: Sequence[str]) -> list[SymbolLink]:
        """Every CALLS, CONTAINS and INHERITS edge into or out of the named symbols."""
        ...


class CircuitBreaker(Protocol):
    """Guards one store; its state is shared by every process that uses the store.

    ``call`` raises :class:`~pipeline.errors.BreakerOpenError` (with the time left
    until a trial call) while open. Only :class:`~pipeline.errors.TransientError`
    counts as a failure: a :class:`~pipeline.errors.PermanentError` passes through and
    leaves the count alone.
    """

    @property
    def store(self) -> str:
        """The store guarded: ``postgres``, ``graph``."""
        ...

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        ...

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` through the breaker."""
        ...


class DeadLetters(Protocol):
    """Writes that failed for good, kept with their payload so that they can be replayed."""

    def add(self, letter: DeadLetter) -> None:
        """Keep a failed task (idempotent per letter id)."""
        ...

    def list(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` letters."""
        ...

    def get(self, letter_id: str) -> DeadLetter | None:
        """One letter, or None."""
        ...

    def remove(self, letter_id: str) -> bool:
        """Drop one letter; False if there was none."""
        ...


class JobStore(Protocol):
    """Job records (PostgreSQL): the durable truth of every job, scoped by tenant."""

    def create(self, request: JobRequest, *, job_id: str, commit: str | None) -> tuple[Job, bool]:
        """Insert a queued job (creating tenant and repository rows as needed), or return
        the existing job with the same idempotency key, or for the same repository and
        commit unless that one failed or was cancelled. The bool: a new job was made."""
        ...

    def discard(self, job_id: str) -> None:
        """Delete a job that never started (its ingest task was not admitted)."""
        ...

    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        """One job; with ``tenant``, None unless the job is that tenant's."""
        ...

    def idle(self, idle_s: float, limit: int = 100) -> list[Job]:
        """Queued or running jobs of every tenant whose record has not changed for
        ``idle_s`` seconds, the longest idle first (candidates for the job sweeper)."""
        ...

    def list(self, tenant: str, repo: str | None = None, limit: int = 50) -> list[Job]:
        """The tenant's newest jobs, optionally of one repository."""
        ...

    def start(self, job_id: str, stage: str, commit: str | None = None) -> bool:
        """queued -> running at ``stage`` (sets started_at, and the commit when it was
        unknown); False when the job is already terminal."""
        ...

    def set_stage(self, job_id: str, stage: str) -> None:
        """Record the stage of a running job (no-op for a terminal one)."""
        ...

    def save_progress(
        self, job_id: str, counters: Mapping[str, int], errors: Sequence[JobError] = ()
    ) -> None:
        """Overwrite the counters and append errors (the newest MAX_ERRORS are kept)."""
        ...

    def finish(self, job_id: str, status: JobStatus, message: str = "") -> bool:
        """Make the job terminal (done, failed, cancelled) with finished_at; False when it
        already was terminal (the first caller wins)."""
        ...

    def set_snapshot(self, job_id: str, snapshot_id: int) -> None: ...

    def add_webhook(self, job_id: str, delivery: WebhookDelivery) -> None:
        """Append one delivery attempt to the job's delivery log."""
        ...


class SnapshotStore(Protocol):
    """The files of each indexed commit and which snapshot search reads (PostgreSQL)."""

    def searchable_files(self, repo: RepoRef) -> dict[str, FileVersion]:
        """path -> file version of the repository's searchable snapshot ({} if none)."""
        ...

    def begin(self, repo: RepoRef, commit: str, files: Sequence[FileVersion]) -> int:
        """Create (or reset) the snapshot of ``commit`` as ``indexing`` with ``files``;
        returns its id. The searchable snapshot is untouched."""
        ...

    def snapshot_files(self, snapshot_id: int) -> dict[str, FileVersion]: ...

    def publish(self, repo: RepoRef, snapshot_id: int) -> None:
        """In one transaction: the snapshot becomes ``ready`` and searchable, and the one
        it replaces ``superseded``."""
        ...

    def abandon(self, snapshot_id: int, status: str) -> None:
        """Mark an unpublished snapshot ``failed`` or ``cancelled``."""
        ...

    def put_symbols(
        self, repo: RepoRef, symbols: Mapping[tuple[str, str], Sequence[tuple[str, str, str]]]
    ) -> None:
        """Keep each file version's symbols, (path, sha256) -> [(name, qualified name,
        kind)], so that a later job resolves calls into files it does not re-read."""
        ...

    def symbols(
        self, repo: RepoRef, files: Mapping[str, str]
    ) -> dict[str, list[tuple[str, str, str]]]:
        """The kept symbols of the given file versions (path -> sha256), by path."""
        ...

    def repositories(self, tenant: str) -> list[dict[str, object]]:
        """The tenant's repositories with their searchable commit, file and chunk counts."""
        ...

    def repository(self, tenant: str, name: str) -> dict[str, object] | None: ...


class TokenStore(Protocol):
    """API tokens, stored as sha256 digests, each bound to one tenant."""

    def create(self, tenant: str, label: str = "") -> str:
        """A new token for ``tenant`` (created if absent); the clear token is returned once."""
        ...

    def register(self, tenant: str, token: str, label: str = "") -> None:
        """Store a token chosen elsewhere (the local stack's development token); idempotent."""
        ...

    def revoke(self, token: str) -> bool:
        """Revoke a token for good; False when it is unknown or already revoked."""
        ...

    def authenticate(self, token: str) -> str | None:
        """The tenant of a valid, unrevoked token, else None."""
        ...


class JobBoard(Protocol):
    """Live, shared job state for the workers (Redis): counters updated atomically,
    the cancel flag, the stores the job waits on and the files' graph extractions
    awaiting the job's graph stage."""

    def set_counters(self, job_id: str, values: Mapping[str, int]) -> None:
        """Set counters to absolute values (the producer's totals: replay-safe)."""
        ...

    def mark(
        self,
        job_id: str,
        counter: str,
        members: Sequence[str],
        deltas: Mapping[str, Mapping[str, int]] | None = None,
    ) -> list[str]:
        """Add members (file paths) to the set ``counter``; returns those that were new.
        A set counter reads as its size, so a replayed task never counts a file twice.
        ``deltas[member]`` is added to the counters, in the same atomic step, for each
        member that was new (a task killed midway counts all of it or nothing)."""
        ...

    def counters(self, job_id: str) -> dict[str, int]:
        """Every counter: added and set ones, and each marked set's size."""
        ...

    def push_error(self, job_id: str, error: JobError) -> None: ...

    def take_errors(self, job_id: str) -> list[JobError]:
        """The errors pushed since the last take (to be appended to the record)."""
        ...

    def throttle(self, job_id: str, marker: str, interval_s: float) -> bool:
        """True at most once per ``interval_s`` per marker (progress flushes)."""
        ...

    def cancel(self, job_id: str) -> None: ...

    def cancelled(self, job_id: str) -> bool: ...

    def stash(self, job_id: str, items: Mapping[str, str]) -> None:
        """Keep payloads by key (path -> encoded file graph) until the job is cleared."""
        ...

    def stashed(self, job_id: str) -> dict[str, str]: ...

    def members(self, job_id: str, counter: str) -> set[str]:
        """The members of the set ``counter`` (the files marked so far)."""
        ...

    def clear(self, job_id: str) -> None:
        """Drop the job's live state (counters stay until they expire)."""
        ...

    def wait_on(self, job_id: str, wait: StoreWait) -> None:
        """Record that the job's tasks wait on ``wait.store`` (replaces that store's
        previous wait)."""
        ...

    def waits(self, job_id: str) -> list[StoreWait]:
        """The recorded waits, one per store, ordered by store; past ones included."""
        ...


class InFlight(Protocol):
    """What the broker holds (Redis): the jobs that have a message waiting on a queue or
    delivered to a worker and not yet acknowledged."""

    def job_ids(self) -> set[str]:
        """Every job id named by a message on a queue or awaiting acknowledgement, read
        in one consistent step."""
        ...


class Admission(Protocol):
    """Bounded queues: a message is pushed only if its queue is below its bound, checked
    and pushed atomically (one Lua script in Redis)."""

    def push(self, queue: str, message: bytes) -> int:
        """Push one broker message; returns the depth after the push. Raises
        :class:`~pipeline.errors.QueueFullError` (with ``retry_after_s``) when full."""
        ...

    def push_many(self, queue: str, messages: Sequence[bytes]) -> int:
        """Push all of ``messages`` or none (QueueFullError when they do not all fit);
        returns the depth after the push."""
        ...

    def depth(self, queue: str) -> int: ...

    def bound(self, queue: str) -> int: ...


class WebhookSender(Protocol):
    """Delivers one signed event to a callback URL, once (the task retries)."""

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body``; returns the 2xx status. Raises
        :class:`~pipeline.errors.WebhookDeliveryError` on a timeout, a connection error or
        5xx, :class:`~pipeline.errors.WebhookRejectedError` on 4xx or a refused address."""
        ...


class SourceFetcher(Protocol):
    """Materialises a job's source as a folder of files under the data folder."""

    def fetch(self, source: JobSource, workdir: Path) -> tuple[Path, str | None]:
        """The folder to index and the commit it is at (None when not a git checkout).
        ``workdir`` is an empty folder the fetcher may fill (clone, extracted archive);
        nothing is written outside it. Raises InvalidInputError naming the bad source."""
        ...


class SearchIndex(Protocol):
    """The searchable snapshots of every repository, read by the two retrievers.

    Every read is scoped to the request's tenant, its repositories (all of the tenant's
    when it names none) and its filters, and sees only each repository's searchable
    snapshot: chunks of file versions that snapshot lists.
    """

    def missing_repositories(self, tenant: str, names: Sequence[str]) -> list[str]:
        """The ``names`` that are not repositories of ``tenant``."""
        ...

    def vector_hits(
        self, request: SearchRequest, vector: npt.NDArray[np.float32], model_id: str, limit: int
    ) -> list[Hit]:
        """Up to ``limit`` chunks embedded by ``model_id``, nearest to ``vector`` first
        (score: cosine similarity)."""
        ...

    def lexical_hits(self, request: SearchRequest, terms: Sequence[str], limit: int) -> list[Hit]:
        """Up to ``limit`` chunks whose full text holds any of ``terms``, best first."""
        ...
