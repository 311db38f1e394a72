"""InMemorySnapshotStore: a behaving fake of the PostgreSQL snapshot store.

It refuses the same input as the real store (the checks of ``pipeline.statements.job_rows``), keeps
a snapshot that a ref holds ``ready`` when its commit is begun again, supersedes the one a
publish replaces when no other ref holds it (dropping its file list), never lets a job
replace a ref published by a job created after it, and drops the symbols of file versions
no held or indexing snapshot lists. A repository's default ref is the first ref it is
begun for ("main" when none is named). One lock, so threads may share one.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.errors import ConflictError, InvalidInputError
from pipeline.jobs import JobStatus, check_tenant
from pipeline.models import FileVersion, RepoRef, SnapshotChanges
from pipeline.ports import JobStore, VectorStore
from pipeline.refs import DEFAULT_REF, RefState, check_ref_name
from pipeline.statements import job_rows, sql


@dataclass
class _Snapshot:
    repo: RepoRef
    commit: str
    status: str
    files: dict[str, FileVersion]
    finished_at: float | None = None


@dataclass
class _Ref:
    snapshot_id: int
    seq: int
    published_at: float


@dataclass
class _Repository:
    created_at: float
    default_ref: str = DEFAULT_REF
    refs: dict[str, _Ref] = field(default_factory=dict)
    symbols: dict[tuple[str, str], list[job_rows.Symbol]] = field(default_factory=dict)

    def held(self, snapshot_id: int) -> bool:
        return any(r.snapshot_id == snapshot_id for r in self.refs.values())

    def snapshot_of(self, ref: str | None, *, or_default: bool = False) -> int | None:
        own = self.refs.get(ref or self.default_ref)
        if own is None and or_default:
            own = self.refs.get(self.default_ref)
        return None if own is None else own.snapshot_id


class InMemorySnapshotStore:
    """Snapshots in dicts. Chunk counts come from ``vectors`` (none without one); only
    repositories this store has seen are listed. ``collect_staged`` reads which jobs
    are live from ``jobs`` (without one, no job is)."""

    def __init__(self, vectors: VectorStore | None = None, jobs: JobStore | None = None) -> None:
        self._vectors = vectors
        self._jobs = jobs  # which jobs are live, for collect_staged (none without one)
        if jobs is not None and hasattr(jobs, "ref_commit"):  # InMemoryJobStore
            jobs.ref_commit = self._ref_commit
        self._staged: dict[str, dict[str, bytes]] = {}
        self._repos: dict[RepoRef, _Repository] = {}
        self._snapshots: dict[int, _Snapshot] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.rows_read = 0  # as the real store counts them

    def close(self) -> None:
        """Nothing to release; here for parity with the real store."""

    def searchable_files(
        self, repo: RepoRef, ref: str | None = None, *, or_default: bool = False
    ) -> dict[str, FileVersion]:
        sql.check_repo(repo)
        if ref is not None:
            check_ref_name(ref)
        with self._lock:
            held = self._repos.get(repo)
            snapshot_id = None if held is None else held.snapshot_of(ref, or_default=or_default)
            if snapshot_id is None:
                return {}
            return dict(self._snapshots[snapshot_id].files)

    def chunker_version(
        self, repo: RepoRef, ref: str | None = None, *, or_default: bool = False
    ) -> int | None:
        sql.check_repo(repo)
        if ref is not None:
            check_ref_name(ref)
        with self._lock:
            held = self._repos.get(repo)
            if held is None:
                return None
            own = held.refs.get(ref or held.default_ref)
            if own is None and or_default:
                own = held.refs.get(held.default_ref)
        if own is None:
            return None
        publisher = None
        if self._jobs is not None and hasattr(self._jobs, "by_seq"):  # InMemoryJobStore
            publisher = self._jobs.by_seq(repo, own.seq)
        if publisher is None:
            return 1
        return int(publisher.counters.get("chunker.version", 1))

    def set_default_ref(self, repo: RepoRef, ref: str) -> None:
        """The repository's default ref, as the real store's job create sets it (for tests)."""
        with self._lock:
            self._repos.setdefault(repo, _Repository(time.time())).default_ref = check_ref_name(ref)

    def begin(self, repo: RepoRef, commit: str, files: Sequence[FileVersion]) -> int:
        sql.check_repo(repo)
        job_rows.check_commit(commit)
        listed = {row[0]: FileVersion(*row) for row in job_rows.file_rows(files)}
        with self._lock:
            held = self._repos.setdefault(repo, _Repository(time.time()))
            found = [i for i, s in self._snapshots.items() if s.repo == repo and s.commit == commit]
            if not found:
                snapshot_id = next(self._ids)
                self._snapshots[snapshot_id] = _Snapshot(repo, commit, "indexing", listed)
                return snapshot_id
            snapshot_id, snapshot = found[0], self._snapshots[found[0]]
            if not held.held(snapshot_id):
                snapshot.status, snapshot.finished_at = "indexing", None
            snapshot.files = listed
            return snapshot_id

    def snapshot_files(self, snapshot_id: int) -> dict[str, FileVersion]:
        with self._lock:
            snapshot = self._snapshots.get(snapshot_id)
            found = {} if snapshot is None else dict(snapshot.files)
            self.rows_read += len(found)
            return found

    def snapshot_changes(
        self, repo: RepoRef, snapshot_id: int, ref: str | None = None
    ) -> SnapshotChanges:
        sql.check_repo(repo)
        if ref is not None:
            check_ref_name(ref)
        with self._lock:
            snapshot = self._snapshots.get(snapshot_id)
            current = {} if snapshot is None else snapshot.files
            held = self._repos.get(repo)
            own = None if held is None else held.snapshot_of(ref)
            base_id = None if held is None else held.snapshot_of(ref, or_default=True)
            base = {} if base_id is None else self._snapshots[base_id].files
            changed = {p for p, f in base.items() if current.get(p) != f}
            changed |= {p for p, f in current.items() if base.get(p) != f}
            deleted = sorted(p for p in changed if p not in current) if own is not None else []
            self.rows_read += len(changed)
            return SnapshotChanges(frozenset(changed), tuple(deleted), len(current))

    def publish(
        self,
        repo: RepoRef,
        snapshot_id: int,
        ref: str | None = None,
        seq: int = 0,
        *,
        changed: Collection[str] | None = None,
    ) -> str | None:
        sql.check_repo(repo)
        if ref is not None:
            check_ref_name(ref)
        if changed is not None:
            sql.check_texts("file path", changed)
        with self._lock:
            held = self._repos.get(repo)
            if held is None:
                raise InvalidInputError(f"repository {repo.key!r} does not exist")
            snapshot = self._snapshots.get(snapshot_id)
            if snapshot is None or snapshot.repo != repo:
                raise InvalidInputError(f"snapshot {snapshot_id} is not one of {repo.key!r}")
            if snapshot.status not in ("indexing", "ready"):
                raise InvalidInputError(
                    f"snapshot {snapshot_id} of {repo.key!r} is {snapshot.status}: begin it again"
                )
            name = ref or held.default_ref
            current = held.refs.get(name)
            if current is not None and current.seq > seq:
                if snapshot.status in ("indexing", "ready") and not held.held(snapshot_id):
                    snapshot.status, snapshot.files = "superseded", {}
                    snapshot.finished_at = time.time()
                self._release(repo, held, None)
                return self._snapshots[current.snapshot_id].commit
            snapshot.status, snapshot.finished_at = "ready", time.time()
            held.refs[name] = _Ref(snapshot_id, seq, time.time())
            previous = None if current is None else current.snapshot_id
            self._release(repo, held, previous if previous != snapshot_id else None, changed)
            return None

    def _release(
        self,
        repo: RepoRef,
        held: _Repository,
        snapshot_id: int | None,
        paths: Collection[str] | None = None,
    ) -> None:
        if (
            snapshot_id is not None
            and not held.held(snapshot_id)
            and not self._building(repo, snapshot_id)
        ):
            released = self._snapshots[snapshot_id]
            if released.status == "ready":
                released.status, released.files = "superseded", {}
        self._collect_symbols(repo, held, paths)

    def _collect_symbols(
        self, repo: RepoRef, held: _Repository, paths: Collection[str] | None = None
    ) -> None:
        kept = {
            (f.path, f.sha256)
            for s in self._snapshots.values()
            if s.repo == repo and s.status in ("ready", "indexing")
            for f in s.files.values()
        }
        among = None if paths is None else set(paths)
        held.symbols = {
            k: v
            for k, v in held.symbols.items()
            if k in kept or (among is not None and k[0] not in among)
        }

    def _ref_commit(self, repo: RepoRef, ref: str) -> str | None:
        with self._lock:
            held = self._repos.get(repo)
            found = None if held is None else held.refs.get(ref)
            return None if found is None else self._snapshots[found.snapshot_id].commit

    def _building(self, repo: RepoRef, snapshot_id: int) -> bool:
        """Whether a live job (queued or running) points at the snapshot (``jobs``)."""
        if self._jobs is None:
            return False
        live = self._jobs.list(
            repo.tenant, repo.name, limit=10_000, statuses=(JobStatus.QUEUED, JobStatus.RUNNING)
        )
        return any(job.snapshot_id == snapshot_id for job in live)

    def held_versions(self, repo: RepoRef, paths: Collection[str]) -> dict[str, set[str]]:
        sql.check_repo(repo)
        sql.check_texts("file path", paths)
        kept: dict[str, set[str]] = {path: set() for path in paths}
        with self._lock:
            for snapshot in self._snapshots.values():
                if snapshot.repo != repo or snapshot.status not in ("ready", "indexing"):
                    continue
                for path, versions in kept.items():
                    if path in snapshot.files:
                        versions.add(snapshot.files[path].sha256)
        return kept

    def snapshot_for(self, repo: RepoRef, ref: str | None, commit: str | None) -> int | None:
        """The snapshot search reads (as search_sql.scope picks it), for the fake index."""
        with self._lock:
            held = self._repos.get(repo)
            if held is None:
                return None
            if commit is None:
                return held.snapshot_of(ref)
            matching = {
                r.snapshot_id
                for r in held.refs.values()
                if self._snapshots[r.snapshot_id].commit.startswith(commit)
            }
            return matching.pop() if len(matching) == 1 else None

    def published_seq(self, repo: RepoRef, ref: str) -> int:
        sql.check_repo(repo)
        check_ref_name(ref)
        with self._lock:
            held = self._repos.get(repo)
            found = None if held is None else held.refs.get(ref)
            return 0 if found is None else found.seq

    def default_ref(self, repo: RepoRef) -> str:
        sql.check_repo(repo)
        with self._lock:
            held = self._repos.get(repo)
            return DEFAULT_REF if held is None else held.default_ref

    def refs(self, repo: RepoRef) -> list[RefState]:
        sql.check_repo(repo)
        with self._lock:
            held = self._repos.get(repo)
            if held is None:
                return []
            states = [
                RefState(
                    name,
                    self._snapshots[r.snapshot_id].commit,
                    r.snapshot_id,
                    r.seq,
                    r.published_at,
                    name == held.default_ref,
                    len(self._snapshots[r.snapshot_id].files),
                )
                for name, r in held.refs.items()
            ]
        return sorted(states, key=lambda r: (not r.default, r.name))

    def delete_ref(self, repo: RepoRef, ref: str) -> bool:
        sql.check_repo(repo)
        check_ref_name(ref)
        with self._lock:
            held = self._repos.get(repo)
            if held is None:
                return False
            if ref == held.default_ref:
                raise ConflictError(
                    f"ref {ref!r} is the default ref of repository {repo.name!r}: delete the"
                    " repository instead"
                )
            gone = held.refs.pop(ref, None)
            if gone is None:
                return False
            self._release(repo, held, gone.snapshot_id)
            return True

    def abandon(self, snapshot_id: int, status: str) -> None:
        job_rows.check_abandon_status(status)
        with self._lock:
            snapshot = self._snapshots.get(snapshot_id)
            if snapshot is None or snapshot.status not in ("indexing", "ready"):
                return
            if self._repos[snapshot.repo].held(snapshot_id):
                return
            snapshot.status, snapshot.finished_at, snapshot.files = status, time.time(), {}
            self._collect_symbols(snapshot.repo, self._repos[snapshot.repo])

    def put_symbols(
        self, repo: RepoRef, symbols: Mapping[tuple[str, str], Sequence[tuple[str, str, str]]]
    ) -> None:
        sql.check_repo(repo)
        rows = job_rows.symbol_rows(symbols)
        if not rows:
            return
        with self._lock:
            held = self._repos.setdefault(repo, _Repository(time.time()))
            for row in rows:
                held.symbols[(row["path"], row["sha"])] = job_rows.symbols_from_json(row["symbols"])

    def symbols(
        self, repo: RepoRef, files: Mapping[str, str]
    ) -> dict[str, list[tuple[str, str, str]]]:
        sql.check_repo(repo)
        sql.check_texts("file path", files.keys())
        sql.check_texts("file sha256", files.values())
        with self._lock:
            held = self._repos.get(repo)
            kept = {} if held is None else held.symbols
            return {p: list(kept[(p, s)]) for p, s in files.items() if (p, s) in kept}

    def snapshot_page(self, snapshot_id: int, after: str, limit: int) -> list[FileVersion]:
        with self._lock:
            snapshot = self._snapshots.get(snapshot_id)
            files = [] if snapshot is None else list(snapshot.files.values())
        return sorted((f for f in files if f.path > after), key=lambda f: f.path)[:limit]

    def searchable_versions(
        self,
        repo: RepoRef,
        paths: Collection[str],
        ref: str | None = None,
        *,
        or_default: bool = False,
    ) -> dict[str, FileVersion]:
        sql.check_repo(repo)
        sql.check_texts("file path", paths)
        searchable = self.searchable_files(repo, ref, or_default=or_default)
        return {p: searchable[p] for p in paths if p in searchable}

    def symbol_candidates(
        self,
        snapshot_id: int,
        names: Collection[str],
        kinds: Collection[str],
        preferred: Collection[str],
        per_kind: int = 2,
    ) -> list[tuple[str, str, str, str]]:
        sql.check_texts("symbol name", names)
        sql.check_texts("file path", preferred)
        with self._lock:
            snapshot = self._snapshots.get(snapshot_id)
            if snapshot is None:
                return []
            kept = self._repos[snapshot.repo].symbols
            found = sorted(
                (name, qualified, kind, f.path)
                for f in snapshot.files.values()
                for name, qualified, kind in kept.get((f.path, f.sha256), ())
                if name in names and kind in kinds
            )
        rank: dict[tuple[str, str], int] = {}
        chosen = []
        for name, qualified, kind, path in sorted(found, key=lambda c: (c[0], c[2], c[3], c[1])):
            if path not in preferred:
                rank[(name, kind)] = rank.get((name, kind), 0) + 1
            if path in preferred or rank[(name, kind)] <= per_kind:
                chosen.append((name, qualified, kind, path))
        return chosen

    def stage_graphs(self, job_id: str, graphs: Mapping[str, bytes]) -> None:
        job_id = job_rows.check_job_id(job_id)
        sql.check_texts("file path", graphs.keys(), allow_empty=False)
        with self._lock:
            self._staged.setdefault(job_id, {}).update(graphs)

    def staged_paths(self, job_id: str, after: str = "", limit: int = 1000) -> list[str]:
        job_id = job_rows.check_job_id(job_id)
        with self._lock:
            return sorted(p for p in self._staged.get(job_id, {}) if p > after)[:limit]

    def staged_graphs(self, job_id: str, paths: Collection[str]) -> dict[str, bytes]:
        job_id = job_rows.check_job_id(job_id)
        with self._lock:
            staged = self._staged.get(job_id, {})
            return {p: staged[p] for p in paths if p in staged}

    def unstage(self, job_id: str, paths: Collection[str]) -> None:
        job_id = job_rows.check_job_id(job_id)
        with self._lock:
            staged = self._staged.get(job_id, {})
            for path in paths:
                staged.pop(path, None)
            if not staged:
                self._staged.pop(job_id, None)

    def any_staged(self, job_id: str) -> bool:
        job_id = job_rows.check_job_id(job_id)
        with self._lock:
            return bool(self._staged.get(job_id))

    def drop_staged(self, job_id: str) -> None:
        job_id = job_rows.check_job_id(job_id)
        with self._lock:
            self._staged.pop(job_id, None)

    def collect_staged(self, limit: int = 10_000) -> int:
        with self._lock:
            held = list(self._staged)
        gone = 0
        for job_id in held:
            job = None if self._jobs is None else self._jobs.get(job_id)
            if job is not None and not job.status.terminal:
                continue
            with self._lock:
                staged = self._staged.get(job_id, {})
                for path in sorted(staged)[: limit - gone]:
                    del staged[path]
                    gone += 1
                if not staged:
                    self._staged.pop(job_id, None)
            if gone >= limit:
                break
        return gone

    def repositories(self, tenant: str) -> list[dict[str, object]]:
        check_tenant(tenant)
        with self._lock:
            mine = sorted((r for r in self._repos if r.tenant == tenant), key=lambda r: r.name)
        return [self._describe(repo) for repo in mine]

    def repository(self, tenant: str, name: str) -> dict[str, object] | None:
        check_tenant(tenant)
        repo = RepoRef(tenant, name)
        with self._lock:
            known = repo in self._repos
        return self._describe(repo) if known else None

    def _describe(self, repo: RepoRef) -> dict[str, object]:
        with self._lock:
            held = self._repos[repo]
            snapshot_id = held.snapshot_of(None)
            snapshot = None if snapshot_id is None else self._snapshots[snapshot_id]
            files = {} if snapshot is None else dict(snapshot.files)
            default_ref, refs = held.default_ref, len(held.refs)
        versions = {(f.path, f.sha256) for f in files.values()}
        keys = self._vectors.chunk_keys(repo) if self._vectors is not None and files else set()
        return {
            "name": repo.name,
            "default_ref": default_ref,
            "refs": refs,
            "searchable_commit": None if snapshot is None else snapshot.commit,
            "files": len(files),
            "chunks": sum(1 for path, sha, _ in keys if (path, sha) in versions),
            "last_indexed_at": None if snapshot is None else snapshot.finished_at,
            "created_at": held.created_at,
        }

    def status(self, snapshot_id: int) -> str | None:
        """A snapshot's status (for tests: the port does not read it)."""
        with self._lock:
            snapshot = self._snapshots.get(snapshot_id)
            return None if snapshot is None else snapshot.status
