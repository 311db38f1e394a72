"""PgSnapshotStore: the SnapshotStore port on ``snapshots``, ``files``, ``refs``,
``file_symbols``, ``symbol_names`` and ``job_file_graphs``.

A snapshot's file list goes in with one binary COPY (a repository can have 10k+ files)
after its old rows are deleted, in the transaction that upserts the snapshot row. The
switch of a ref's snapshot is one transaction holding the repository row (``FOR NO KEY
UPDATE``, so that inserts of rows that reference the repository go on) and the ref's
row; ``begin`` holds the repository shared, so that it sees which snapshots refs hold and
leaves those ``ready``. The statement texts live in ``pipeline.statements.snapshot_sql``.

Must not import: celery, tasks, workers, api, cli.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pipeline.adapters.postgres.base import PgStore, execute, open_checked_pool
from pipeline.adapters.postgres.connect import STORE
from pipeline.errors import ConflictError, InvalidInputError, StoreUnavailableError
from pipeline.jobs import check_tenant
from pipeline.models import FileVersion, RepoRef, SnapshotChanges
from pipeline.refs import DEFAULT_REF, RefState, check_ref_name
from pipeline.statements import deletion_sql, job_rows, job_sql, snapshot_sql, sql

_PUBLISHABLE = frozenset({"indexing", "ready"})


class PgSnapshotStore(PgStore):
    """Snapshots of every tenant's repositories. ``pool_size`` bounds the connections;
    ``timeout_s`` bounds connecting and waiting for a pooled connection.

    ``begin`` and ``put_symbols`` create the tenant and repository rows if absent.
    ``publish`` refuses (:class:`InvalidInputError`) a snapshot of another repository
    or one that was abandoned or superseded since it was begun."""

    def __init__(self, dsn: str, *, pool_size: int = 4, timeout_s: float = 5.0) -> None:
        self._pool = open_checked_pool(
            dsn,
            # The newest column its statements use (migration 0015; they apply in order):
            # an API or worker started before `quarry migrate` says so, not "bad input".
            table="repositories",
            column="default_ref",
            pool_size=pool_size,
            timeout_s=timeout_s,
            name="quarry-snapshot-store",
        )
        # File rows read back (file lists, pages, versions, changes): a one-file change's
        # commit reads a handful, not the repository's (tests read it).
        self.rows_read = 0

    def searchable_files(
        self, repo: RepoRef, ref: str | None = None, *, or_default: bool = False
    ) -> dict[str, FileVersion]:
        sql.check_repo(repo)
        _check_ref(ref)
        return self._files(snapshot_sql.searchable_files(repo, ref, or_default=or_default))

    def chunker_version(
        self, repo: RepoRef, ref: str | None = None, *, or_default: bool = False
    ) -> int | None:
        sql.check_repo(repo)
        _check_ref(ref)
        query = snapshot_sql.chunker_version(repo, ref, or_default=or_default)
        with self._connection() as conn:
            row = execute(conn, query).fetchone()
        if row is None or row[0] is None:
            return None
        return 1 if row[1] is None else int(row[1])

    def begin(self, repo: RepoRef, commit: str, files: Sequence[FileVersion]) -> int:
        sql.check_repo(repo)
        job_rows.check_commit(commit)
        rows = job_rows.file_rows(files)
        with self._transaction() as conn:
            # Ordered against blob collection (deletion_sql.blob_lock): the job asks which
            # blobs are missing only after these files are committed.
            execute(conn, deletion_sql.blob_lock(shared=True))
            execute(conn, job_sql.ensure_tenant(repo.tenant))
            execute(conn, sql.ensure_repository(repo))
            repository_id, _ = _locked(conn, repo, exclusive=False)
            upsert = snapshot_sql.begin_snapshot(repository_id, commit)
            snapshot_id = _first(execute(conn, upsert).fetchone())
            execute(conn, snapshot_sql.delete_snapshot_files(snapshot_id))
            with conn.cursor() as cur, cur.copy(snapshot_sql.COPY_FILES) as copy:
                copy.set_types(list(snapshot_sql.FILE_TYPES))
                for row in rows:
                    copy.write_row((snapshot_id, repository_id, *row))
        return snapshot_id

    def snapshot_files(self, snapshot_id: int) -> dict[str, FileVersion]:
        return self._files(snapshot_sql.snapshot_files(snapshot_id))

    def snapshot_changes(
        self, repo: RepoRef, snapshot_id: int, ref: str | None = None
    ) -> SnapshotChanges:
        sql.check_repo(repo)
        _check_ref(ref)
        with self._connection() as conn:
            rows = execute(conn, snapshot_sql.snapshot_changes(repo, snapshot_id, ref)).fetchall()
            total = _first(execute(conn, snapshot_sql.count_files(snapshot_id)).fetchone())
        self.rows_read += len(rows)
        return SnapshotChanges(
            changed=frozenset(str(path) for path, _ in rows),
            deleted=tuple(sorted(str(path) for path, gone in rows if gone)),
            files=total,
        )

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
        _check_ref(ref)
        paths = None
        if changed is not None:
            sql.check_texts("file path", changed)
            paths = sorted(changed)
        with self._transaction() as conn:
            repository_id, default_ref = _locked(conn, repo, exclusive=True)
            name = ref or default_ref
            found = execute(conn, snapshot_sql.lock_snapshot(repository_id, snapshot_id)).fetchone()
            if found is None:
                raise InvalidInputError(f"snapshot {snapshot_id} is not one of {repo.key!r}")
            if found[0] not in _PUBLISHABLE:
                raise InvalidInputError(
                    f"snapshot {snapshot_id} of {repo.key!r} is {found[0]}: begin it again"
                )
            held = execute(conn, snapshot_sql.lock_ref(repository_id, name)).fetchone()
            if held is not None and int(held[1]) > seq:
                # A job created after this one published the ref: it stays.
                execute(conn, snapshot_sql.abandon(snapshot_id, "superseded"))
                for query in snapshot_sql.release(repository_id, snapshot_id):
                    execute(conn, query)
                return str(held[2])
            previous = None if held is None else int(held[0])
            queries = snapshot_sql.publish(
                repository_id, name, snapshot_id, seq, previous, changed=paths
            )
            for query in queries:
                execute(conn, query)
            return None

    def held_versions(self, repo: RepoRef, paths: Collection[str]) -> dict[str, set[str]]:
        sql.check_repo(repo)
        sql.check_texts("file path", paths)
        if not paths:
            return {}
        with self._connection() as conn:
            found = execute(conn, sql.repository_id(repo)).fetchone()
            if found is None:
                return {}
            query = snapshot_sql.held_versions(int(found[0]), sorted(paths))
            kept: dict[str, set[str]] = {path: set() for path in paths}
            for path, sha in execute(conn, query).fetchall():
                kept[str(path)].add(str(sha))
        return kept

    def published_seq(self, repo: RepoRef, ref: str) -> int:
        sql.check_repo(repo)
        check_ref_name(ref)
        with self._connection() as conn:
            row = execute(conn, snapshot_sql.published_seq(repo, ref)).fetchone()
        return 0 if row is None else int(row[0])

    def default_ref(self, repo: RepoRef) -> str:
        sql.check_repo(repo)
        with self._connection() as conn:
            row = execute(conn, snapshot_sql.default_ref(repo)).fetchone()
        return DEFAULT_REF if row is None else str(row[0])

    def refs(self, repo: RepoRef) -> list[RefState]:
        sql.check_repo(repo)
        with self._connection() as conn:
            rows = execute(conn, snapshot_sql.list_refs(repo)).fetchall()
        return [
            RefState(str(n), str(c), int(sid), int(seq), float(at), bool(d), int(files))
            for n, c, sid, seq, at, d, files in rows
        ]

    def delete_ref(self, repo: RepoRef, ref: str) -> bool:
        sql.check_repo(repo)
        check_ref_name(ref)
        with self._transaction() as conn:
            found = execute(conn, snapshot_sql.lock_repository(repo, exclusive=True)).fetchone()
            if found is None:
                return False
            repository_id, default_ref = int(found[0]), str(found[1])
            if ref == default_ref:
                raise ConflictError(
                    f"ref {ref!r} is the default ref of repository {repo.name!r}: delete the"
                    " repository instead"
                )
            gone = execute(conn, snapshot_sql.delete_ref(repository_id, ref)).fetchone()
            if gone is None:
                return False
            for query in snapshot_sql.release(repository_id, int(gone[0])):
                execute(conn, query)
        return True

    def abandon(self, snapshot_id: int, status: str) -> None:
        job_rows.check_abandon_status(status)
        with self._transaction() as conn:
            execute(conn, snapshot_sql.abandon(snapshot_id, status))
            # A publish looks at the symbols of the paths it changed only: those of the
            # versions this snapshot alone listed go here.
            found = execute(conn, snapshot_sql.snapshot_repository(snapshot_id)).fetchone()
            if found is not None:
                execute(conn, snapshot_sql.collect_symbols(int(found[0])))

    def put_symbols(
        self, repo: RepoRef, symbols: Mapping[tuple[str, str], Sequence[tuple[str, str, str]]]
    ) -> None:
        sql.check_repo(repo)
        rows = job_rows.symbol_rows(symbols)
        if not rows:
            return
        with self._transaction() as conn:
            execute(conn, job_sql.ensure_tenant(repo.tenant))
            execute(conn, sql.ensure_repository(repo))
            repository_id = _first(execute(conn, sql.repository_id(repo)).fetchone())
            execute(conn, snapshot_sql.put_symbols(repository_id, job_rows.dumps(rows)))

    def symbols(
        self, repo: RepoRef, files: Mapping[str, str]
    ) -> dict[str, list[tuple[str, str, str]]]:
        sql.check_repo(repo)
        sql.check_texts("file path", files.keys())
        sql.check_texts("file sha256", files.values())
        if not files:
            return {}
        paths = sorted(files)
        query = snapshot_sql.symbols(repo, paths, [files[p] for p in paths])
        with self._connection() as conn:
            rows = execute(conn, query).fetchall()
        return {str(path): job_rows.symbols_from_json(found) for path, found in rows}

    def snapshot_page(self, snapshot_id: int, after: str, limit: int) -> list[FileVersion]:
        sql.check_texts("file path", [after])
        files = self._files(snapshot_sql.snapshot_page(snapshot_id, after, limit))
        return sorted(files.values(), key=lambda f: f.path)

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
        _check_ref(ref)
        if not paths:
            return {}
        query = snapshot_sql.searchable_versions(repo, sorted(paths), ref, or_default=or_default)
        return self._files(query)

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
        if not names or not kinds:
            return []
        query = snapshot_sql.symbol_candidates(
            snapshot_id, sorted(names), sorted(kinds), sorted(preferred), per_kind
        )
        with self._connection() as conn:
            rows = execute(conn, query).fetchall()
        return [(str(n), str(q), str(k), str(p)) for n, q, k, p in rows]

    def stage_graphs(self, job_id: str, graphs: Mapping[str, bytes]) -> None:
        job_rows.check_job_id(job_id)
        sql.check_texts("file path", graphs.keys(), allow_empty=False)
        if not graphs:
            return
        paths = sorted(graphs)
        with self._transaction() as conn:
            execute(conn, snapshot_sql.stage_graphs(job_id, paths, [graphs[p] for p in paths]))

    def staged_paths(self, job_id: str, after: str = "", limit: int = 1000) -> list[str]:
        job_rows.check_job_id(job_id)
        sql.check_texts("file path", [after])
        with self._connection() as conn:
            rows = execute(conn, snapshot_sql.staged_paths(job_id, after, limit)).fetchall()
        return [str(row[0]) for row in rows]

    def staged_graphs(self, job_id: str, paths: Collection[str]) -> dict[str, bytes]:
        job_rows.check_job_id(job_id)
        sql.check_texts("file path", paths)
        if not paths:
            return {}
        with self._connection() as conn:
            rows = execute(conn, snapshot_sql.staged_graphs(job_id, sorted(paths))).fetchall()
        return {str(path): bytes(graph) for path, graph in rows}

    def unstage(self, job_id: str, paths: Collection[str]) -> None:
        job_rows.check_job_id(job_id)
        sql.check_texts("file path", paths)
        if paths:
            with self._transaction() as conn:
                execute(conn, snapshot_sql.unstage(job_id, sorted(paths)))

    def any_staged(self, job_id: str) -> bool:
        job_rows.check_job_id(job_id)
        with self._connection() as conn:
            row = execute(conn, snapshot_sql.any_staged(job_id)).fetchone()
        return bool(row and row[0])

    def drop_staged(self, job_id: str) -> None:
        job_rows.check_job_id(job_id)
        with self._transaction() as conn:
            execute(conn, snapshot_sql.drop_staged(job_id))

    def collect_staged(self, limit: int = 10_000) -> int:
        with self._transaction() as conn:
            return int(execute(conn, snapshot_sql.collect_staged(limit)).rowcount or 0)

    def repositories(self, tenant: str) -> list[dict[str, object]]:
        check_tenant(tenant)
        with self._connection() as conn:
            rows = execute(conn, snapshot_sql.repositories(tenant)).fetchall()
        return [_repository(row) for row in rows]

    def repository(self, tenant: str, name: str) -> dict[str, object] | None:
        check_tenant(tenant)
        with self._connection() as conn:
            row = execute(conn, snapshot_sql.repositories(tenant, name)).fetchone()
        return None if row is None else _repository(row)

    def _files(self, query: sql.Query) -> dict[str, FileVersion]:
        with self._connection() as conn, conn.cursor(binary=True) as cur:
            rows = cur.execute(query.text, query.params).fetchall()
        self.rows_read += len(rows)
        return {
            path: FileVersion(path, sha, language, int(size)) for path, sha, language, size in rows
        }


def _locked(conn: Any, repo: RepoRef, *, exclusive: bool) -> tuple[int, str]:
    """(id, default ref) of the repository, row-locked."""
    row = execute(conn, snapshot_sql.lock_repository(repo, exclusive=exclusive)).fetchone()
    if row is None:
        raise InvalidInputError(f"repository {repo.key!r} does not exist")
    return int(row[0]), str(row[1])


def _check_ref(ref: str | None) -> None:
    if ref is not None:
        check_ref_name(ref)


def _first(row: Sequence[Any] | None) -> int:
    if row is None:  # pragma: no cover - read in the transaction that wrote it
        raise StoreUnavailableError(STORE, "a row just written cannot be read back")
    return int(row[0])


def _repository(row: Sequence[Any]) -> dict[str, object]:
    name, commit, files, chunks, last_indexed_at, created_at, default_ref, refs = row
    return {
        "name": name,
        "default_ref": default_ref,
        "refs": int(refs),
        "searchable_commit": commit,
        "files": int(files),
        "chunks": int(chunks),
        "last_indexed_at": None if last_indexed_at is None else float(last_indexed_at),
        "created_at": float(created_at),
    }
