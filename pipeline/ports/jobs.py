"""The job's ports: job and snapshot records, tokens, the job board, the broker's
in-flight view, admission to bounded queues and dead letters.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from pipeline.deletions import RepoDeletion
from pipeline.jobs import (
    Job,
    JobError,
    JobRequest,
    JobStatus,
    StoreWait,
    WebhookDelivery,
)
from pipeline.models import (
    DeadLetter,
    FileVersion,
    RepoRef,
    SnapshotChanges,
)
from pipeline.refs import RefState
from pipeline.tokens import SCOPES, ApiToken, IssuedToken, TokenGrant


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

    def list(
        self,
        tenant: str,
        repo: str | None = None,
        limit: int = 50,
        *,
        statuses: Collection[JobStatus] = (),
        offset: int = 0,
    ) -> list[Job]:
        """The tenant's newest jobs, optionally of one repository and of ``statuses``
        (empty: any status); ``offset`` skips that many newer ones (paging)."""
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

    def searchable_files(
        self, repo: RepoRef, ref: str | None = None, *, or_default: bool = False
    ) -> dict[str, FileVersion]:
        """path -> file version of the snapshot the ref holds (None: the repository's
        default ref); with ``or_default``, the default ref's when the ref holds none (the
        base a new ref's job diffs against); {} if none."""
        ...

    def chunker_version(
        self, repo: RepoRef, ref: str | None = None, *, or_default: bool = False
    ) -> int | None:
        """The chunker version (``chunker.version`` in the counters of the job that
        published it) of the snapshot :meth:`searchable_files` reads: None when there is
        no such snapshot, 1 for one published before versions were recorded."""
        ...

    def begin(self, repo: RepoRef, commit: str, files: Sequence[FileVersion]) -> int:
        """Create (or reset) the snapshot of ``commit`` as ``indexing`` with ``files``;
        returns its id. The searchable snapshot is untouched."""
        ...

    def snapshot_files(self, snapshot_id: int) -> dict[str, FileVersion]: ...

    def snapshot_changes(
        self, repo: RepoRef, snapshot_id: int, ref: str | None = None
    ) -> SnapshotChanges:
        """How the snapshot differs from the one the ref holds (a new ref: from the
        default ref's), compared in the store: what comes back is bounded by the changes,
        not by the repository's files."""
        ...

    def publish(
        self,
        repo: RepoRef,
        snapshot_id: int,
        ref: str | None = None,
        seq: int = 0,
        *,
        changed: Collection[str] | None = None,
    ) -> str | None:
        """In one transaction: the snapshot becomes ``ready`` and the one the ref (None:
        the default ref) holds, and the snapshot it held before is released (``superseded``
        with its file list dropped, unless another ref holds it). Unless a job created
        after the publishing one (``seq``: ``Job.seq``) already published the ref: then
        nothing changes but the snapshot (abandoned unless held) and the commit the ref
        holds is returned. None: published. ``changed``: the paths whose version differs
        between the two snapshots (:meth:`snapshot_changes`); the symbols of versions
        that lost their last holder are looked for among those paths only (None: among
        every path of the repository)."""
        ...

    def held_versions(self, repo: RepoRef, paths: Collection[str]) -> dict[str, set[str]]:
        """path -> the versions of it that a held (ready) or indexing snapshot lists, for
        each of ``paths`` (an empty set: none; its chunk rows may all go)."""
        ...

    def published_seq(self, repo: RepoRef, ref: str) -> int:
        """The creation number (``Job.seq``) of the job that published the ref; 0 when
        nothing has."""
        ...

    def default_ref(self, repo: RepoRef) -> str:
        """The repository's default ref ("main" for a repository not created yet)."""
        ...

    def refs(self, repo: RepoRef) -> list[RefState]:
        """The repository's refs, the default ref first."""
        ...

    def delete_ref(self, repo: RepoRef, ref: str) -> bool:
        """Forget the ref and release its snapshot; False when there is no such ref. The
        default ref is refused (ConflictError): delete the repository instead."""
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

    def snapshot_page(self, snapshot_id: int, after: str, limit: int) -> list[FileVersion]:
        """The snapshot's files after path ``after``, in path order, ``limit`` at most."""
        ...

    def searchable_versions(
        self,
        repo: RepoRef,
        paths: Collection[str],
        ref: str | None = None,
        *,
        or_default: bool = False,
    ) -> dict[str, FileVersion]:
        """:meth:`searchable_files`, of ``paths`` only."""
        ...

    def symbol_candidates(
        self,
        snapshot_id: int,
        names: Collection[str],
        kinds: Collection[str],
        preferred: Collection[str],
        per_kind: int = 2,
    ) -> list[tuple[str, str, str, str]]:
        """(name, qualified name, kind, path) of the kept symbols called one of ``names``,
        of one of ``kinds``, in the snapshot's file versions: every one whose path is
        ``preferred`` and, elsewhere, the first ``per_kind`` per name and kind by path;
        sorted by name, kind, path and qualified name."""
        ...

    def stage_graphs(self, job_id: str, graphs: Mapping[str, bytes]) -> None:
        """Keep the job's encoded file graphs (path -> bytes) for its graph stage."""
        ...

    def staged_paths(self, job_id: str, after: str = "", limit: int = 1000) -> list[str]:
        """The paths of the job's waiting file graphs after ``after``, in order."""
        ...

    def staged_graphs(self, job_id: str, paths: Collection[str]) -> dict[str, bytes]:
        """The job's waiting file graphs of ``paths`` (those still waiting), by path."""
        ...

    def unstage(self, job_id: str, paths: Collection[str]) -> None:
        """The graphs of ``paths`` were written: they wait no more."""
        ...

    def any_staged(self, job_id: str) -> bool:
        """Whether any file graph of the job still waits (read after :meth:`unstage`
        committed, so that of two batches ending together at least one sees none)."""
        ...

    def drop_staged(self, job_id: str) -> None:
        """Forget every waiting file graph of the job (it ended)."""
        ...

    def collect_staged(self, limit: int = 10_000) -> int:
        """Forget the waiting file graphs of jobs that are neither queued nor running (or
        are gone), ``limit`` at most; how many went."""
        ...

    def repositories(self, tenant: str) -> list[dict[str, object]]:
        """The tenant's repositories with their searchable commit, file and chunk counts."""
        ...

    def repository(self, tenant: str, name: str) -> dict[str, object] | None: ...


class TokenStore(Protocol):
    """API tokens, stored as sha256 digests, each bound to one tenant, with scopes and a
    public id (pipeline/tokens.py)."""

    def create(self, tenant: str, label: str = "", scopes: Sequence[str] = SCOPES) -> str:
        """A new token for ``tenant`` (created if absent); the clear token is returned once."""
        ...

    def issue(self, tenant: str, label: str = "", scopes: Sequence[str] = SCOPES) -> IssuedToken:
        """:meth:`create`, with the new token's public record."""
        ...

    def register(self, tenant: str, token: str, label: str = "") -> None:
        """Store a token chosen elsewhere (the local stack's development token), with
        every scope; idempotent."""
        ...

    def revoke(self, token: str) -> bool:
        """Revoke a token for good; False when it is unknown or already revoked."""
        ...

    def revoke_id(self, token_id: str, tenant: str | None = None) -> ApiToken | None:
        """Revoke the token of that id (only if it is ``tenant``'s, unless None); its
        record, revoked now or before, or None when there is no such token."""
        ...

    def authenticate(self, token: str) -> str | None:
        """The tenant of a valid, unrevoked token, else None."""
        ...

    def identify(self, token: str) -> TokenGrant | None:
        """The tenant, id and scopes of a valid, unrevoked token, else None; notes when
        it was used (at most once a minute per token)."""
        ...

    def list_tokens(self, tenant: str | None = None) -> list[ApiToken]:
        """The tenant's tokens (every tenant's with None), revoked ones too, newest first."""
        ...


class JobBoard(Protocol):
    """Live, shared job state for the workers (Redis): counters updated atomically,
    the cancel flag and the stores the job waits on."""

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

    def lease(self, job_id: str, marker: str, holder: str, ttl_s: float) -> bool:
        """Take ``marker``'s lease for ``holder`` for ``ttl_s`` when it is free or
        already ``holder``'s (renewed); False while another holder's lease lasts."""
        ...

    def release_lease(self, job_id: str, marker: str, holder: str) -> None:
        """End ``marker``'s lease if ``holder`` holds it (another holder's stays)."""
        ...

    def cancel(self, job_id: str) -> None: ...

    def cancelled(self, job_id: str) -> bool: ...

    def members(self, job_id: str, counter: str) -> set[str]:
        """The members of the set ``counter`` (the files marked so far)."""
        ...

    def among(self, job_id: str, counter: str, candidates: Sequence[str]) -> set[str]:
        """Those of ``candidates`` that are members of the set ``counter`` (one round
        trip, however large the set)."""
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

    def restore_orphans(self) -> int:
        """Give back to their queues the messages that workers whose lease ran out (dead
        processes, dead hosts) were delivered and never acknowledged; how many."""
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


class RepoDeletionStore(Protocol):
    """Repository deletions (PostgreSQL): the record of each, the mark that hides the
    repository and refuses its new jobs, and the removal of its rows in bounded batches."""

    def begin(self, repo: RepoRef) -> tuple[RepoDeletion, bool]:
        """Mark the repository deleted and record a queued deletion, in one transaction;
        (the deletion, True). The deletion in progress and False when one is; a failed one
        queued again from its first stage and True (to be sent again). NotFoundError
        for a repository the tenant lacks; ConflictError naming the job while one of its
        jobs is queued or running."""
        ...

    def get(self, deletion_id: str, tenant: str | None = None) -> RepoDeletion | None:
        """The deletion; None when unknown, or another tenant's when ``tenant`` is given."""
        ...

    def unfinished(self, idle_s: float, limit: int) -> list[str]:
        """Ids of deletions queued or running with no progress for ``idle_s`` seconds,
        claimed (their progress time set to now): each is returned at most once per
        ``idle_s``, however often it is asked."""
        ...

    def start(self, deletion_id: str) -> RepoDeletion | None:
        """Mark it running and return it; None when it ended or is unknown."""
        ...

    def set_stage(self, deletion_id: str, stage: str) -> None: ...

    def count(self, deletion_id: str, counter: str, n: int) -> None:
        """Add ``n`` to the deletion's ``counter``."""
        ...

    def erase(self, deletion_id: str, stage: str, limit: int) -> int:
        """Remove the next at most ``limit`` rows of ``stage`` (pipeline.deletions.STAGES,
        the graph aside) and count what was removed; the rows the batch took (0: the stage
        is done). For "blobs" and "cache": only content no remaining row holds."""
        ...

    def finish(self, deletion_id: str, *, error: str | None = None) -> None:
        """Done, or failed with ``error``; nothing when it already ended."""
        ...
