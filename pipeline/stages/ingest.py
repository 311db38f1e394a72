"""The producer: a client's request becomes a job, and a job's source becomes chunk work.

Owns submission (validate, create or find the job, admit its ingest task) and the
ingest step: fetch the source, list and hash its files, diff them against the
repository's searchable snapshot, record the new snapshot's file list, and enqueue the
added and changed files for chunking in batches. Unchanged files are never read again;
files deleted since the searchable snapshot leave both stores when the job commits.

Jobs of one repository run one at a time: an ingest that finds another job of the same
repository running is put back (``IngestOutcome.BUSY``), since two interleaved commits
would each garbage-collect the other's chunk versions.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any

from pipeline import flow
from pipeline.analysis.chunking import CHUNKER_VERSION
from pipeline.analysis.inventory import (
    Inventory,
    VersionCache,
    estimate,
    take_inventory,
    tree_digest,
)
from pipeline.errors import InvalidInputError, PermanentError, QueueFullError, QuotaExceededError
from pipeline.jobs import (
    NOT_PUBLISHED,
    Job,
    JobRequest,
    JobStatus,
    SourceKind,
    Stage,
    check_repo_name,
)
from pipeline.messages import encode_file, encode_repo
from pipeline.models import FileVersion, RepoRef
from pipeline.ports import BlobStore, SourceFetcher
from pipeline.refs import check_ref_name
from pipeline.sources.blobs import local_reader, upload
from pipeline.sources.uploads import upload_id_of
from pipeline.stages import window
from pipeline.stages.indexing import (
    SETTLED,
    JobContext,
    finish,
    flush_progress,
    maybe_start_graph,
    record_error,
    settle,
)
from pipeline.webhooks.events import check_callback_url


@dataclass(frozen=True, slots=True)
class ChangePlan:
    """How a commit's files differ from the searchable snapshot's."""

    added: tuple[FileVersion, ...]
    changed: tuple[FileVersion, ...]
    unchanged: tuple[FileVersion, ...]
    deleted: tuple[str, ...]

    @property
    def work(self) -> tuple[FileVersion, ...]:
        return self.added + self.changed


def plan_changes(
    files: Sequence[FileVersion],
    previous: Mapping[str, FileVersion],
    *,
    reindex: Collection[str] = (),
) -> ChangePlan:
    """Added, changed (content hash differs, or the path is in ``reindex``), unchanged
    and deleted files, by path."""
    added, changed, unchanged = [], [], []
    again = frozenset(reindex)
    for file in files:
        before = previous.get(file.path)
        if before is None:
            added.append(file)
        elif before.sha256 != file.sha256 or file.path in again:
            changed.append(file)
        else:
            unchanged.append(file)
    current = {f.path for f in files}
    deleted = tuple(sorted(p for p in previous if p not in current))
    return ChangePlan(tuple(added), tuple(changed), tuple(unchanged), deleted)


def batch_files(
    files: Sequence[FileVersion], *, max_files: int, max_bytes: int
) -> list[list[FileVersion]]:
    """Consecutive batches of at most ``max_files`` files and about ``max_bytes`` bytes."""
    batches: list[list[FileVersion]] = []
    current: list[FileVersion] = []
    size = 0
    for file in files:
        if current and (len(current) >= max_files or size + file.size_bytes > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(file)
        size += file.size_bytes
    if current:
        batches.append(current)
    return batches


def validate_request(request: JobRequest) -> JobRequest:
    """The request with its fields checked; InvalidInputError names the bad one.

    A local source (folder or archive) must be an absolute path: the workers read it,
    and a relative one would mean whatever their working directory holds.
    """
    check_repo_name(request.repo.name)
    source = request.source
    uploaded = source.kind is SourceKind.ARCHIVE and upload_id_of(source.location) is not None
    if (
        source.kind is not SourceKind.GIT
        and not uploaded
        and not PurePath(source.location).is_absolute()
    ):
        raise InvalidInputError(
            f"source {source.location!r}: a local {source.kind.value} path must be absolute"
        )
    if request.callback_url is not None:
        check_callback_url(request.callback_url)
    if request.idempotency_key is not None and not 1 <= len(request.idempotency_key) <= 200:
        raise InvalidInputError("idempotency_key: must be 1-200 characters")
    for name in (request.ref_name, request.default_ref):
        if name is not None:
            check_ref_name(name)
    return request


def submit(
    ctx: JobContext,
    request: JobRequest,
    *,
    admit: Callable[[str, Mapping[str, Any]], None],
) -> tuple[Job, bool]:
    """Create (or find) the job and admit its ingest task; the bool: a new job.

    ``admit`` enqueues without waiting and raises QueueFullError when the ingest queue
    is full: the new job is then discarded, so the client's retry (with the same
    idempotency key) creates it again instead of finding a job that never ran.
    """
    validate_request(request)
    job, created = ctx.jobs.create(request, job_id=str(uuid.uuid4()), commit=request.commit)
    if created:
        try:
            admit(flow.INGEST.task, {"job_id": job.job_id})
        except QueueFullError:
            ctx.jobs.discard(job.job_id)
            raise
    return job, created


class IngestOutcome(enum.StrEnum):
    ENQUEUED = "enqueued"  # chunk batches sent (or the commit, when nothing changed)
    BUSY = "busy"  # another job of the repository is running: try again later
    SKIPPED = "skipped"  # the job is unknown, terminal or cancelled
    FAILED = "failed"  # the source could not be read: the job failed with the reason


def job_workdir(data_dir: Path, job_id: str) -> Path:
    """The job's scratch folder for a clone or an extracted archive (removed at commit)."""
    return data_dir / "work" / job_id


@dataclass(frozen=True, slots=True)
class IngestOptions:
    max_file_bytes: int
    batch_max_files: int = 32
    batch_max_bytes: int = 1_000_000
    slice_files: int = 10_000  # files one ingest call sends; INGEST_MORE sends the rest
    # Fair sharing (pipeline.stages.window): the most files of the job in flight; 0: none,
    # INGEST_MORE is sent at once.
    window_files: int = 0


def ingest(
    ctx: JobContext,
    job_id: str,
    *,
    fetcher: SourceFetcher,
    blobs: BlobStore,
    workdir: Path,
    options: IngestOptions,
    charge: Callable[[Job, int], None] | None = None,
    versions: VersionCache | None = None,
) -> IngestOutcome:
    """List, hash and diff the job's files; store the changed ones' bytes in ``blobs``
    and enqueue them for chunking. The checkout in ``workdir`` is scratch once this
    returns: no later stage reads it. ``charge(job, files)`` charges the files to index
    to the tenant's quota (pipeline.quotas): a QuotaExceededError fails the job before
    its snapshot begins. ``versions`` (the worker process's) keeps the versions of a
    folder read in place, so that indexing it again hashes only the files that changed
    (a checkout in ``workdir`` is new each time: it is not kept)."""
    job = ctx.jobs.get(job_id)
    if job is None or job.status.terminal or ctx.board.cancelled(job_id):
        return IngestOutcome.SKIPPED
    if _repository_busy(ctx, job):
        return IngestOutcome.BUSY
    return _ingest(ctx, job, fetcher=fetcher, blobs=blobs, workdir=workdir, options=options,
                   charge=charge, versions=versions)  # fmt: skip


def _ingest(
    ctx: JobContext,
    job: Job,
    *,
    fetcher: SourceFetcher,
    blobs: BlobStore,
    workdir: Path,
    options: IngestOptions,
    charge: Callable[[Job, int], None] | None,
    versions: VersionCache | None = None,
) -> IngestOutcome:
    """:func:`ingest` of a live job whose repository no other job holds."""
    job_id = job.job_id
    if superseded(ctx, job):
        return IngestOutcome.SKIPPED
    try:
        root, commit = fetcher.fetch(job.source, workdir, tenant=job.repo.tenant)
        in_place = not root.resolve().is_relative_to(workdir.resolve())
        inventory = take_inventory(
            root, max_file_bytes=options.max_file_bytes, cache=versions if in_place else None
        )
    except PermanentError as exc:
        ctx.jobs.start(job_id, Stage.INGEST)
        finish(ctx, job, JobStatus.FAILED, f"source {job.source.describe()}: {exc}")
        return IngestOutcome.FAILED
    commit = job.commit or commit or tree_digest(inventory.files)
    if not ctx.jobs.start(job_id, Stage.INGEST, commit):
        return IngestOutcome.SKIPPED
    job = replace(job, commit=commit)
    # Against the ref's own snapshot, or the default ref's for a new ref: a branch pays
    # only for the files it changed (pipeline/refs.py).
    base = ctx.snapshots.searchable_files(job.repo, job.ref_name, or_default=True)
    again = _reindex(ctx, job, [f.path for f in inventory.files])
    plan = plan_changes(inventory.files, base, reindex=again)
    # --- quotas (pipeline.quotas): files per day, charged whole before anything starts
    if charge is not None:
        try:
            charge(job, len(plan.work))
        except QuotaExceededError as exc:
            finish(ctx, job, JobStatus.FAILED, str(exc))
            return IngestOutcome.FAILED
    # ---
    snapshot_id = ctx.snapshots.begin(job.repo, commit, inventory.files)
    ctx.jobs.set_snapshot(job_id, snapshot_id)

    totals = {
        "files.total": len(inventory.files) + len(inventory.skipped),
        "files.todo": len(plan.work),
        "files.skipped_listed": len(plan.unchanged) + len(inventory.skipped),
        "files.deleted": len(plan.deleted),
        "skipped.unchanged": len(plan.unchanged),
        # Files of the base listed at the same version but chunked again (an older
        # chunker made their chunks), and the chunker this job's snapshot is made by.
        "files.rechunked": sum(
            1
            for f in plan.changed
            if f.path not in job.reindex_paths and base[f.path].sha256 == f.sha256
        ),
        "chunker.version": CHUNKER_VERSION,
        "bytes.total": sum(f.size_bytes for f in plan.work),
    }
    for skipped in inventory.skipped:
        key = f"skipped.{skipped.reason.value}"
        totals[key] = totals.get(key, 0) + 1
    ctx.board.set_counters(job_id, totals)
    ctx.jobs.set_stage(job_id, Stage.CHUNK)
    # Ingest runs again when its message is delivered twice or the sweeper recovers a
    # stalled job (pipeline.stages.recovery): files that already settled are not sent again.
    settled = ctx.board.members(job_id, SETTLED)
    todo = [f for f in plan.work if f.path not in settled]
    unreadable: list[str] = []

    def refuse(file: FileVersion, reason: str) -> None:
        unreadable.append(file.path)
        record_error(ctx, job_id, file.path, reason)

    upload(blobs, todo, local_reader(root), on_unreadable=refuse)
    settle(ctx, job_id, "files.failed", unreadable)
    refused = set(unreadable)
    work = sorted((f for f in todo if f.path not in refused), key=lambda f: f.path)
    run = uuid.uuid4().hex[:12]  # this run's pending slices (pipeline.stages.window)
    send_slice(
        ctx, job_id, repo=job.repo, snapshot_id=snapshot_id, work=work, options=options, run=run
    )
    flush_progress(ctx, job_id, force=True)
    maybe_start_graph(ctx, job_id, ctx.board.counters(job_id))
    return IngestOutcome.ENQUEUED


def _reindex(ctx: JobContext, job: Job, paths: Sequence[str]) -> Collection[str]:
    """The paths to chunk again whatever their version: the job's ``reindex_paths``, and
    all of ``paths`` when the base snapshot was chunked by an older chunker (chunk shape
    changed: ``CHUNKER_VERSION``), so that an index never mixes two shapes. The embedding
    cache keeps the texts that did not change from being embedded again."""
    version = ctx.snapshots.chunker_version(job.repo, job.ref_name, or_default=True)
    if version is not None and version < CHUNKER_VERSION:
        return frozenset(paths) | frozenset(job.reindex_paths)
    return job.reindex_paths


SNAPSHOT_PAGE = 1_000  # snapshot files read per query by ingest_more


def ingest_more(
    ctx: JobContext, job_id: str, after: str, *, options: IngestOptions, run: str = ""
) -> int:
    """Send the next slice of a large job's files, those after path ``after``; the number
    of files sent. No checkout is needed: the ingest stored every file's bytes, and the
    files to send are the snapshot's work (against the searchable snapshot) not settled.

    Bounded by the slice, not the repository: the snapshot is read a page at a time from
    ``after`` on, compared with the searchable versions of that page's paths only, and its
    work tested for settled files on the board, until one file more than a slice is found
    (which says that another slice follows)."""
    job = ctx.jobs.get(job_id)
    if job is None or job.status.terminal or ctx.board.cancelled(job_id):
        return 0
    if job.snapshot_id is None:
        raise PermanentError(f"job {job_id}: no snapshot to continue from")
    work: list[FileVersion] = []
    cursor = after
    size = window.slice_size(options.slice_files, options.window_files)
    page_size = max(SNAPSHOT_PAGE, size)
    while len(work) <= size:
        page = ctx.snapshots.snapshot_page(job.snapshot_id, cursor, page_size)
        if not page:
            break
        previous = ctx.snapshots.searchable_versions(
            job.repo, [f.path for f in page], job.ref_name, or_default=True
        )
        plan = plan_changes(page, previous, reindex=_reindex(ctx, job, [f.path for f in page]))
        settled = ctx.board.among(job_id, SETTLED, [f.path for f in plan.work])
        work.extend(f for f in plan.work if f.path not in settled)
        cursor = page[-1].path
        if len(page) < page_size:
            break
    work.sort(key=lambda f: f.path)
    return send_slice(
        ctx,
        job_id,
        repo=job.repo,
        snapshot_id=job.snapshot_id,
        work=work,
        options=options,
        run=run,
    )


def send_slice(
    ctx: JobContext,
    job_id: str,
    *,
    repo: RepoRef,
    snapshot_id: int,
    work: Sequence[FileVersion],
    options: IngestOptions,
    run: str = "",
) -> int:
    """Send CHUNK batches of the first ``options.slice_files`` of ``work`` (sorted by
    path) and, when more remain, an INGEST_MORE message that sends the rest: no call
    enqueues more than one slice, however large the repository. With a window, the
    INGEST_MORE waits until the job's files in flight leave room for its slice
    (pipeline.stages.window)."""
    size = window.slice_size(options.slice_files, options.window_files)
    now = list(work[:size])
    more = now[-1].path if len(work) > len(now) else None
    if options.window_files > 0:
        window.hold(
            ctx.board,
            job_id,
            run=run,
            sent=[f.path for f in now],
            after=more,
            window_files=options.window_files,
            slice_files=size,
        )
    batches = batch_files(now, max_files=options.batch_max_files, max_bytes=options.batch_max_bytes)
    encoded = encode_repo(repo)
    ctx.send(
        flow.CHUNK.task,
        [
            {
                "job_id": job_id,
                "repo": encoded,
                "snapshot_id": snapshot_id,
                "files": [encode_file(f) for f in batch],
            }
            for batch in batches
        ],
    )
    if options.window_files > 0:
        counters = ctx.board.counters(job_id)
        window.release(ctx.board, ctx.send, job_id, counters, counters.get(SETTLED, 0))
    elif more is not None:
        ctx.send(flow.INGEST_MORE.task, [{"job_id": job_id, "after": more}])
    return len(now)


# A job running longer than this is presumed lost (its worker and messages gone) and no
# longer holds its repository.
STALE_JOB_S = 3 * 3600.0


def _repository_busy(ctx: JobContext, job: Job) -> bool:
    now = ctx.clock()
    return any(
        other.status is JobStatus.RUNNING
        and other.job_id != job.job_id
        and now - (other.started_at or now) < STALE_JOB_S
        for other in ctx.jobs.list(job.repo.tenant, job.repo.name, limit=20)
    )


def superseded(ctx: JobContext, job: Job) -> bool:
    """Whether a job created after this one already published its ref: then this one
    does no work (it could never publish) and ends ``done``, saying so."""
    newer = ctx.snapshots.published_seq(job.repo, job.ref_name)
    if newer <= job.seq:
        return False
    ctx.jobs.start(job.job_id, Stage.INGEST)
    ctx.board.set_counters(job.job_id, {NOT_PUBLISHED: 1})
    finish(
        ctx,
        job,
        JobStatus.DONE,
        f"not published: ref {job.ref_name!r} was already published by a job created"
        " after this one",
    )
    return True


def dry_run(
    ctx: JobContext,
    request: JobRequest,
    *,
    fetcher: SourceFetcher,
    workdir: Path,
    max_file_bytes: int,
) -> dict[str, Any]:
    """What a job for ``request`` would do, enqueueing nothing: the files and bytes of
    the commit, how many changed since the searchable snapshot, and the chunks and
    seconds to expect for those."""
    validate_request(request)
    root, commit = fetcher.fetch(request.source, workdir, tenant=request.repo.tenant)
    inventory = take_inventory(root, max_file_bytes=max_file_bytes)
    base = ctx.snapshots.searchable_files(request.repo, request.ref_name, or_default=True)
    plan = plan_changes(inventory.files, base)
    work = Inventory(
        files=plan.work,
        skipped=inventory.skipped,
        bytes_total=sum(f.size_bytes for f in plan.work),
    )
    return {
        "repo": request.repo.name,
        "commit": request.commit or commit or tree_digest(inventory.files),
        "files_total": len(inventory.files),
        "bytes_total": inventory.bytes_total,
        "added": len(plan.added),
        "changed": len(plan.changed),
        "unchanged": len(plan.unchanged),
        "deleted": len(plan.deleted),
        **estimate(work),
    }
