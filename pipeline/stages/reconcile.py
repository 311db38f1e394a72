"""Finding and repairing a repository whose two stores disagree (``quarry reconcile``).

The truth is the repository's searchable snapshot: its file list (path -> content
hash) in PostgreSQL. A file is indexed when both stores hold its current version:
PostgreSQL its chunk rows, the graph its ``File`` node at that hash and the same chunk
ids as ``Chunk`` nodes. :func:`find_drift` compares the three; :func:`reconcile`
repairs what it found:

* rows or nodes of a path the snapshot does not list (ghosts), and chunk rows of an
  older version of a listed file (stale), are deleted at once;
* a listed file that a store lacks, holds at another version, or holds with other
  chunks is re-indexed by a job with ``reindex_paths``: it is read from the source
  again, chunked, embedded (from the embedding cache: its content is unchanged) and
  written to both stores, and the job's commit publishes a new snapshot.

A listed file in neither store is taken for one the chunk stage skipped on its content
(the producer's inventory runs the same checks, so this is rare: the snapshot lists it,
nothing was written), never re-indexed in a loop; a file that both stores lost whole
looks the same. ``everything=True`` re-indexes every file to cover that case.

Reconcile refuses to run while a job of the repository is queued or running: that
job's rows of new file versions would look stale.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from pipeline.errors import ConflictError, InvalidInputError, NotFoundError
from pipeline.jobs import Job, JobRequest, JobSource, JobStatus, SourceKind
from pipeline.models import FileVersion, RepoRef
from pipeline.ports import GraphStore, JobStore, SnapshotStore, VectorStore


@dataclass(frozen=True, slots=True)
class Drift:
    """How the stores differ from the snapshot; every tuple is of sorted paths."""

    files: int  # files the snapshot lists
    vectors_missing: tuple[str, ...] = ()  # chunk rows absent or fewer than the graph's
    graph_missing: tuple[str, ...] = ()  # no File node at the listed version, or chunks differ
    vector_ghosts: tuple[str, ...] = ()  # rows of paths the snapshot does not list
    vector_stale: tuple[str, ...] = ()  # rows of another version of a listed path
    graph_ghosts: tuple[str, ...] = ()  # File or Chunk nodes of paths not listed

    @property
    def reindex(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.vectors_missing) | set(self.graph_missing)))

    @property
    def consistent(self) -> bool:
        return not (self.reindex or self.vector_ghosts or self.vector_stale or self.graph_ghosts)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "consistent": self.consistent,
            "vectors_missing": list(self.vectors_missing),
            "graph_missing": list(self.graph_missing),
            "vector_ghosts": list(self.vector_ghosts),
            "vector_stale": list(self.vector_stale),
            "graph_ghosts": list(self.graph_ghosts),
        }


def find_drift(
    snapshot: Mapping[str, FileVersion],
    vector_keys: Iterable[tuple[str, str, str]],
    graph_files: Mapping[str, str],
    graph_chunks: Iterable[tuple[str, str]],
) -> Drift:
    """Compare ``snapshot`` (path -> version) with the vector store's (path, file hash,
    chunk id) rows and the graph's (path -> file hash) and (path, chunk id) nodes."""
    rows: dict[str, set[str]] = {}
    stale: set[str] = set()
    vector_ghosts: set[str] = set()
    for path, sha, chunk_id in vector_keys:
        listed = snapshot.get(path)
        if listed is None:
            vector_ghosts.add(path)
        elif listed.sha256 != sha:
            stale.add(path)
        else:
            rows.setdefault(path, set()).add(chunk_id)
    nodes: dict[str, set[str]] = {}
    for path, chunk_id in graph_chunks:
        nodes.setdefault(path, set()).add(chunk_id)
    graph_ghosts = {p for p in graph_files if p not in snapshot}
    graph_ghosts |= {p for p in nodes if p not in snapshot}

    vectors_missing, graph_missing = [], []
    for path, version in snapshot.items():
        held, graph_held = rows.get(path, set()), nodes.get(path, set())
        if path not in graph_files and not held:
            continue  # in neither store: skipped on its content by the chunk stage
        if graph_files.get(path) != version.sha256:
            graph_missing.append(path)
            continue
        if graph_held - held:
            vectors_missing.append(path)
        if held - graph_held:
            graph_missing.append(path)
    return Drift(
        files=len(snapshot),
        vectors_missing=tuple(sorted(vectors_missing)),
        graph_missing=tuple(sorted(graph_missing)),
        vector_ghosts=tuple(sorted(vector_ghosts)),
        vector_stale=tuple(sorted(stale)),
        graph_ghosts=tuple(sorted(graph_ghosts)),
    )


@dataclass(frozen=True, slots=True)
class Stores:
    """What reconcile reads and repairs."""

    jobs: JobStore
    snapshots: SnapshotStore
    vectors: VectorStore
    graph: GraphStore


@dataclass(frozen=True, slots=True)
class Outcome:
    drift: Drift
    deleted: dict[str, int] = field(default_factory=dict)  # what was removed at once
    job: Job | None = None  # the re-index job, when files needed one

    def as_dict(self) -> dict[str, object]:
        return {
            "drift": self.drift.as_dict(),
            "deleted": dict(self.deleted),
            "job_id": None if self.job is None else self.job.job_id,
        }


LIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


def repair_source(jobs: Collection[Job], given: JobSource | None) -> JobSource:
    """Where a re-index reads files: ``given``, else the newest done job's source."""
    if given is not None:
        return given
    done = [j for j in jobs if j.status is JobStatus.DONE]
    if not done:
        raise InvalidInputError("no done job to take the source from; give the source")
    newest = max(done, key=lambda j: j.created_at)
    if newest.source.kind is SourceKind.ARCHIVE:
        raise InvalidInputError(
            "the last source was an uploaded archive, which is not kept; give the source"
        )
    return newest.source


def reconcile(
    stores: Stores,
    repo: RepoRef,
    *,
    repair: bool,
    submit: Callable[[JobRequest], Job],
    source: JobSource | None = None,
    everything: bool = False,
) -> Outcome:
    """Find the drift of ``repo``; with ``repair``, delete ghosts and stale rows and
    submit a job that re-indexes the files a store lacks (every file: ``everything``).

    Raises NotFoundError for an unknown repository, InvalidInputError for a missing
    source, and ConflictError while one of the repository's jobs is queued or running.
    """
    if stores.snapshots.repository(repo.tenant, repo.name) is None:
        raise NotFoundError(f"repository {repo.name!r} not found")
    history = stores.jobs.list(repo.tenant, repo.name, limit=50)
    busy = [j.job_id for j in history if j.status in LIVE]
    if busy:
        raise ConflictError(
            f"repository {repo.name!r} has job {busy[0]} in progress; reconcile after it ends"
        )
    snapshot = stores.snapshots.searchable_files(repo)  # the default ref: the graph's
    keys = stores.vectors.chunk_keys(repo)
    held = stores.snapshots.held_versions(repo, {path for path, _, _ in keys})
    drift = find_drift(
        snapshot,
        # Rows of versions another ref holds are neither stale nor ghosts.
        [k for k in keys if _compared(k, snapshot, held)],
        stores.graph.file_versions(repo),
        stores.graph.chunk_keys(repo),
    )
    reindex = tuple(sorted(snapshot)) if everything else drift.reindex
    if not repair or (not reindex and drift.consistent):
        return Outcome(drift)
    from_source = repair_source(history, source) if reindex else None
    deleted = {"vector_rows": 0, "graph_nodes": 0}
    if drift.vector_ghosts or drift.vector_stale:
        deleted["vector_rows"] = stores.vectors.retain_versions(repo, held)
    if drift.graph_ghosts:
        deleted["graph_nodes"] = stores.graph.delete_files(repo, drift.graph_ghosts)
    job = None
    if from_source is not None:
        job = submit(JobRequest(repo, from_source, reindex_paths=reindex))
    return Outcome(drift, deleted, job)


def _compared(
    key: tuple[str, str, str],
    snapshot: Mapping[str, FileVersion],
    held: Mapping[str, Collection[str]],
) -> bool:
    """A chunk row of the default ref's version, or of a version no snapshot holds."""
    path, sha, _ = key
    listed = snapshot.get(path)
    return (listed is not None and listed.sha256 == sha) or sha not in held.get(path, ())
