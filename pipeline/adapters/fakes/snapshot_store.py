"""InMemorySnapshotStore: a behaving fake of the PostgreSQL snapshot store.

It refuses the same input as the real store (the checks of ``pipeline.statements.job_rows``), keeps
the searchable snapshot ``ready`` when its commit is begun again, supersedes the one a
publish replaces (dropping its file list) and drops the symbols of file versions no
current snapshot lists. One lock, so threads may share one.

Must not import: celery, tasks, workers, api, cli, or any driver.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.errors import InvalidInputError
from pipeline.jobs import check_tenant
from pipeline.models import FileVersion, RepoRef
from pipeline.ports import JobStore, VectorStore
from pipeline.statements import job_rows, sql


@dataclass
class _Snapshot:
    repo: RepoRef
    commit: str
    status: str
    files: dict[str, FileVersion]
    finished_at: float | None = None


@dataclass
class _Repository:
    created_at: float
    searchable: int | None = None
    symbols: dict[tuple[str, str], list[job_rows.Symbol]] = field(default_factory=dict)


class InMemorySnapshotStore:
    """Snapshots in dicts. Chunk counts come from ``vectors`` (none without one); only
    repositories this store has seen are listed. ``collect_staged`` reads which jobs
    are live from ``jobs`` (without one, no job is)."""

    def __init__(self, vectors: VectorStore | None = None, jobs: JobStore | None = None) -> None:
        self._vectors = vectors
        self._jobs = jobs  # which jobs are live, for collect_staged (none without one)
        self._staged: dict[str, dict[str, bytes]] = {}
        self._repos: dict[RepoRef, _Repository] = {}
        self._snapshots: dict[int, _Snapshot] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release; here for parity with the real store."""

    def searchable_files(self, repo: RepoRef) -> dict[str, FileVersion]:
        sql.check_repo(repo)
        with self._lock:
            held = self._repos.get(repo)
            if held is None or held.searchable is None:
                return {}
            return dict(self._snapshots[held.searchable].files)

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
            if snapshot_id != held.searchable:
                snapshot.status, snapshot.finished_at = "indexing", None
            snapshot.files = listed
            return snapshot_id

    def snapshot_files(self, snapshot_id: int) -> dict[str, FileVersion]:
        with self._lock:
            snapshot = self._snapshots.get(snapshot_id)
            return {} if snapshot is None else dict(snapshot.files)

    def publish(self, repo: RepoRef, snapshot_id: int) -> None:
        sql.check_repo(repo)
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
            snapshot.status, snapshot.finished_at = "ready", time.time()
            previous = held.searchable
            if previous is not None and previous != snapshot_id:
                self._snapshots[previous].status = "superseded"
                self._snapshots[previous].files = {}
            held.searchable = snapshot_id
            kept = {
                (f.path, f.sha256)
                for i, s in self._snapshots.items()
                if s.repo == repo and (i == snapshot_id or s.status == "indexing")
                for f in s.files.values()
            }
            held.symbols = {k: v for k, v in held.symbols.items() if k in kept}

    def abandon(self, snapshot_id: int, status: str) -> None:
        job_rows.check_abandon_status(status)
        with self._lock:
            snapshot = self._snapshots.get(snapshot_id)
            if snapshot is None or snapshot.status != "indexing":
                return
            if self._repos[snapshot.repo].searchable == snapshot_id:
                return
            snapshot.status, snapshot.finished_at, snapshot.files = status, time.time(), {}

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

    def searchable_versions(self, repo: RepoRef, paths: Collection[str]) -> dict[str, FileVersion]:
        sql.check_repo(repo)
        sql.check_texts("file path", paths)
        searchable = self.searchable_files(repo)
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
            snapshot = None if held.searchable is None else self._snapshots[held.searchable]
            files = {} if snapshot is None else dict(snapshot.files)
        versions = {(f.path, f.sha256) for f in files.values()}
        keys = self._vectors.chunk_keys(repo) if self._vectors is not None and files else set()
        return {
            "name": repo.name,
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
