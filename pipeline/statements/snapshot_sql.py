"""SQL of the snapshot store, as plain strings and parameter dicts.

Owns the statement texts of ``PgSnapshotStore``: snapshots, their file lists (binary
COPY), the refs that hold them (``refs``, migrations/sql/0015), the kept symbols of file
versions (``file_symbols`` and ``symbol_names``, migrations/sql/0006 and 0011), the
file graphs waiting for the graph stage (``job_file_graphs``) and the listing of repositories with
their counts. The checks its fake shares live in ``pipeline.statements.job_rows``.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver; does no I/O.
"""

from __future__ import annotations

from pipeline.models import RepoRef
from pipeline.statements.sql import Query

# Row locks on the repository: exclusive for the switch of a ref's snapshot (NO KEY
# UPDATE, so that inserts of rows referencing the repository go on), shared for a
# snapshot being begun, so that it sees which snapshots refs hold until it commits.
_LOCK_REPOSITORY = {
    True: "SELECT id, default_ref FROM repositories"
    " WHERE tenant_id = %(tenant)s AND name = %(name)s FOR NO KEY UPDATE",
    False: "SELECT id, default_ref FROM repositories"
    " WHERE tenant_id = %(tenant)s AND name = %(name)s FOR SHARE",
}
# The snapshot a ref of the repository holds: the ref named, else the default ref; with
# ``or_default``, the default ref's when the named one holds none (a new ref's base).
_REF_SNAPSHOT = (
    "(SELECT coalesce(own.snapshot_id, CASE WHEN %(or_default)s THEN dflt.snapshot_id END)"
    " FROM repositories AS r"
    " LEFT JOIN refs AS own ON own.repository_id = r.id"
    " AND own.name = coalesce(%(ref)s::text, r.default_ref)"
    " LEFT JOIN refs AS dflt ON dflt.repository_id = r.id AND dflt.name = r.default_ref"
    " WHERE r.tenant_id = %(tenant)s AND r.name = %(name)s)"
)
# A snapshot is held while a ref names it (it is then 'ready').
_HELD = "EXISTS (SELECT 1 FROM refs AS h WHERE h.snapshot_id = {snapshot})"
# A snapshot a live job is building (it may be one a ref held when the job began it): not
# released under it, or the job would publish a file list that lost its rows.
_BUILDING = (
    "EXISTS (SELECT 1 FROM jobs AS b WHERE b.snapshot_id = {snapshot}"
    " AND b.status IN ('queued', 'running'))"
)


def lock_repository(repo: RepoRef, *, exclusive: bool) -> Query:
    """(id, default ref) of the repository, row-locked."""
    return Query(_LOCK_REPOSITORY[exclusive], {"tenant": repo.tenant, "name": repo.name})


# Column order of COPY_FILES and of the rows it takes: (snapshot id, repository id,
# *pipeline.statements.job_rows.FileRow).
FILE_TYPES: tuple[str, ...] = ("int8", "int8", "text", "text", "text", "int8")
COPY_FILES = """
COPY files (snapshot_id, repository_id, path, content_sha256, language, size_bytes)
FROM STDIN (FORMAT BINARY)
"""


def begin_snapshot(repository_id: int, commit: str) -> Query:
    """The snapshot of the commit as ``indexing`` (unless a ref holds it, which keeps it
    ``ready`` so that search keeps it); returns its id."""
    held = _HELD.format(snapshot="s.id")
    return Query(
        "INSERT INTO snapshots AS s (repository_id, commit_sha, status)"
        " VALUES (%(repository_id)s, %(commit)s, 'indexing')"
        " ON CONFLICT (repository_id, commit_sha) DO UPDATE SET"
        f" status = CASE WHEN {held} THEN s.status ELSE 'indexing' END,"
        f" finished_at = CASE WHEN {held} THEN s.finished_at END"
        " RETURNING id",
        {"repository_id": repository_id, "commit": commit},
    )


def delete_snapshot_files(snapshot_id: int) -> Query:
    return Query("DELETE FROM files WHERE snapshot_id = %(id)s", {"id": snapshot_id})


def _ref_params(repo: RepoRef, ref: str | None, or_default: bool) -> dict[str, object]:
    return {"tenant": repo.tenant, "name": repo.name, "ref": ref, "or_default": or_default}


def searchable_files(repo: RepoRef, ref: str | None, *, or_default: bool = False) -> Query:
    """The files of the snapshot the ref holds (see _REF_SNAPSHOT)."""
    return Query(
        "SELECT f.path, f.content_sha256, f.language, f.size_bytes FROM files AS f"
        f" WHERE f.snapshot_id = {_REF_SNAPSHOT}",
        _ref_params(repo, ref, or_default),
    )


def chunker_version(repo: RepoRef, ref: str | None, *, or_default: bool = False) -> Query:
    """(snapshot id, chunker version or NULL) of the snapshot _REF_SNAPSHOT picks, read
    from the counters of the job that published that ref (refs.job_seq)."""
    return Query(
        "SELECT p.snapshot_id, (SELECT (j.counters ->> 'chunker.version')::int FROM jobs AS j"
        " WHERE j.repository_id = p.repository_id AND j.seq = p.job_seq) FROM ("
        " SELECT r.id AS repository_id,"
        " CASE WHEN own.snapshot_id IS NOT NULL THEN own.snapshot_id"
        " WHEN %(or_default)s THEN dflt.snapshot_id END AS snapshot_id,"
        " CASE WHEN own.snapshot_id IS NOT NULL THEN own.job_seq"
        " WHEN %(or_default)s THEN dflt.job_seq END AS job_seq"
        " FROM repositories AS r"
        " LEFT JOIN refs AS own ON own.repository_id = r.id"
        " AND own.name = coalesce(%(ref)s::text, r.default_ref)"
        " LEFT JOIN refs AS dflt ON dflt.repository_id = r.id AND dflt.name = r.default_ref"
        " WHERE r.tenant_id = %(tenant)s AND r.name = %(name)s) AS p",
        _ref_params(repo, ref, or_default),
    )


def snapshot_files(snapshot_id: int) -> Query:
    return Query(
        "SELECT path, content_sha256, language, size_bytes FROM files WHERE snapshot_id = %(id)s",
        {"id": snapshot_id},
    )


def snapshot_page(snapshot_id: int, after: str, limit: int) -> Query:
    return Query(
        "SELECT path, content_sha256, language, size_bytes FROM files"
        " WHERE snapshot_id = %(id)s AND path > %(after)s ORDER BY path LIMIT %(limit)s",
        {"id": snapshot_id, "after": after, "limit": limit},
    )


def searchable_versions(
    repo: RepoRef, paths: list[str], ref: str | None, *, or_default: bool = False
) -> Query:
    return Query(
        "SELECT f.path, f.content_sha256, f.language, f.size_bytes FROM files AS f"
        f" WHERE f.snapshot_id = {_REF_SNAPSHOT} AND f.path = ANY(%(paths)s::text[])",
        _ref_params(repo, ref, or_default) | {"paths": paths},
    )


def held_versions(repository_id: int, paths: list[str]) -> Query:
    """(path, sha256) of the versions of ``paths`` that a held or indexing snapshot lists:
    the chunk rows and symbols of any other version of them may go."""
    return Query(
        "SELECT DISTINCT f.path, f.content_sha256 FROM files AS f"
        " JOIN snapshots AS s ON s.id = f.snapshot_id"
        " WHERE f.repository_id = %(repository_id)s AND f.path = ANY(%(paths)s::text[])"
        " AND s.status IN ('ready', 'indexing')",
        {"repository_id": repository_id, "paths": paths},
    )


def lock_snapshot(repository_id: int, snapshot_id: int) -> Query:
    return Query(
        "SELECT status, commit_sha FROM snapshots"
        " WHERE id = %(id)s AND repository_id = %(repository_id)s FOR NO KEY UPDATE",
        {"id": snapshot_id, "repository_id": repository_id},
    )


def lock_ref(repository_id: int, ref: str) -> Query:
    """(snapshot id, job seq, commit) of the ref, row-locked; no row: the ref is new."""
    return Query(
        "SELECT f.snapshot_id, f.job_seq, s.commit_sha FROM refs AS f"
        " JOIN snapshots AS s ON s.id = f.snapshot_id"
        " WHERE f.repository_id = %(repository_id)s AND f.name = %(ref)s FOR UPDATE OF f",
        {"repository_id": repository_id, "ref": ref},
    )


def release(
    repository_id: int, snapshot_id: int | None, paths: list[str] | None = None
) -> list[Query]:
    """The snapshot superseded, its file list gone, unless a ref still holds it or a live
    job is building it; then the symbols of file versions that no held or indexing
    snapshot lists (among ``paths`` only, when given)."""
    params = {"repository_id": repository_id, "id": snapshot_id}
    held = _HELD.format(snapshot="%(id)s::bigint")
    building = _BUILDING.format(snapshot="%(id)s::bigint")
    return [
        Query(
            "UPDATE snapshots SET status = 'superseded'"
            f" WHERE id = %(id)s::bigint AND status = 'ready' AND NOT {held} AND NOT {building}",
            params,
        ),
        Query(
            "DELETE FROM files WHERE snapshot_id = %(id)s::bigint AND"
            " (SELECT status FROM snapshots WHERE id = %(id)s::bigint) = 'superseded'",
            params,
        ),
        collect_symbols(repository_id, paths),
    ]


def collect_symbols(repository_id: int, paths: list[str] | None = None) -> Query:
    """The symbols of file versions that no held or indexing snapshot lists go; with
    ``paths``, only those of these paths are looked at (a publish: the paths whose
    version changed), else every path of the repository."""
    among = "" if paths is None else " AND fs.path = ANY(%(paths)s::text[])"
    return Query(
        "DELETE FROM file_symbols AS fs WHERE fs.repository_id = %(repository_id)s"
        + among
        + " AND NOT EXISTS (SELECT 1 FROM files AS f JOIN snapshots AS s ON s.id = f.snapshot_id"
        " WHERE f.repository_id = fs.repository_id AND f.path = fs.path"
        " AND f.content_sha256 = fs.file_sha256 AND s.status IN ('ready', 'indexing'))",
        {"repository_id": repository_id, "paths": paths},
    )


def snapshot_changes(repo: RepoRef, snapshot_id: int, ref: str | None) -> Query:
    """(path, deleted) of each path whose version differs between the snapshot and the
    one the ref holds (a new ref: the default ref's), or that only one of them lists;
    ``deleted``: the ref's own snapshot lists it and this one does not. Compared in the
    server (a merge of two index ranges): only the differences come back."""
    base = _REF_SNAPSHOT.replace("%(or_default)s", "true")
    own = _REF_SNAPSHOT.replace("%(or_default)s", "false")
    return Query(
        f"WITH ref AS MATERIALIZED (SELECT {base} AS base, {own} IS NOT NULL AS own)"
        " SELECT coalesce(c.path, b.path), c.path IS NULL AND (SELECT own FROM ref)"
        " FROM (SELECT path, content_sha256 FROM files WHERE snapshot_id = %(id)s) AS c"
        " FULL JOIN (SELECT path, content_sha256 FROM files"
        " WHERE snapshot_id = (SELECT base FROM ref)) AS b ON b.path = c.path"
        " WHERE c.content_sha256 IS DISTINCT FROM b.content_sha256",
        _ref_params(repo, ref, False) | {"id": snapshot_id},
    )


def snapshot_repository(snapshot_id: int) -> Query:
    return Query("SELECT repository_id FROM snapshots WHERE id = %(id)s", {"id": snapshot_id})


def count_files(snapshot_id: int) -> Query:
    return Query("SELECT count(*) FROM files WHERE snapshot_id = %(id)s", {"id": snapshot_id})


def publish(
    repository_id: int,
    ref: str,
    snapshot_id: int,
    seq: int,
    previous_id: int | None,
    *,
    changed: list[str] | None = None,
) -> list[Query]:
    """The snapshot ready and held by the ref (for the job numbered ``seq``); the one the
    ref held before released (see :func:`release`; the symbols looked at: those of the
    ``changed`` paths, when given)."""
    params = {"repository_id": repository_id, "ref": ref, "id": snapshot_id, "seq": seq}
    return [
        Query(
            "UPDATE snapshots SET status = 'ready', finished_at = now() WHERE id = %(id)s", params
        ),
        Query(
            "INSERT INTO refs (repository_id, name, snapshot_id, job_seq)"
            " VALUES (%(repository_id)s, %(ref)s, %(id)s, %(seq)s)"
            " ON CONFLICT (repository_id, name) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id,"
            " job_seq = EXCLUDED.job_seq, published_at = now()",
            params,
        ),
        *release(repository_id, None if previous_id == snapshot_id else previous_id, changed),
    ]


def delete_ref(repository_id: int, ref: str) -> Query:
    """The ref gone; returns the snapshot it held."""
    return Query(
        "DELETE FROM refs WHERE repository_id = %(repository_id)s AND name = %(ref)s"
        " RETURNING snapshot_id",
        {"repository_id": repository_id, "ref": ref},
    )


def published_seq(repo: RepoRef, ref: str) -> Query:
    return Query(
        "SELECT f.job_seq FROM refs AS f JOIN repositories AS r ON r.id = f.repository_id"
        " WHERE r.tenant_id = %(tenant)s AND r.name = %(name)s AND f.name = %(ref)s",
        {"tenant": repo.tenant, "name": repo.name, "ref": ref},
    )


def default_ref(repo: RepoRef) -> Query:
    return Query(
        "SELECT default_ref FROM repositories WHERE tenant_id = %(tenant)s AND name = %(name)s",
        {"tenant": repo.tenant, "name": repo.name},
    )


def list_refs(repo: RepoRef) -> Query:
    """(name, commit, snapshot id, job seq, published at, default, files) of each ref."""
    return Query(
        "SELECT f.name, s.commit_sha, f.snapshot_id, f.job_seq,"
        " extract(epoch FROM f.published_at)::float8, f.name = r.default_ref,"
        " (SELECT count(*) FROM files AS x WHERE x.snapshot_id = f.snapshot_id)"
        " FROM repositories AS r JOIN refs AS f ON f.repository_id = r.id"
        " JOIN snapshots AS s ON s.id = f.snapshot_id"
        " WHERE r.tenant_id = %(tenant)s AND r.name = %(name)s AND r.deletion_id IS NULL"
        " ORDER BY f.name = r.default_ref DESC, f.name",
        {"tenant": repo.tenant, "name": repo.name},
    )


def abandon(snapshot_id: int, status: str) -> Query:
    """A snapshot that no ref holds becomes ``status`` and its file list goes (as a
    superseded one's does): one being indexed, or a ``ready`` one whose refs were all
    deleted while its job was building it."""
    held = _HELD.format(snapshot="s.id")
    return Query(
        "WITH gone AS (UPDATE snapshots AS s SET status = %(status)s, finished_at = now()"
        f" WHERE s.id = %(id)s AND s.status IN ('indexing', 'ready') AND NOT {held}"
        " RETURNING s.id)"
        " DELETE FROM files WHERE snapshot_id IN (SELECT id FROM gone)",
        {"id": snapshot_id, "status": status},
    )


def put_symbols(repository_id: int, rows_json: str) -> Query:
    """The symbols of file versions, as one row per version (``file_symbols``) and one per
    symbol by name (``symbol_names``); a version whose symbols are already kept as they
    are is left alone, one whose symbols changed (a new extractor) is replaced."""
    return Query(
        "WITH input AS (SELECT x.path, x.sha, x.symbols"
        " FROM jsonb_to_recordset(%(rows)s::jsonb) AS x (path text, sha text, symbols jsonb)),"
        " changed AS (INSERT INTO file_symbols (repository_id, path, file_sha256, symbols)"
        " SELECT %(repository_id)s, i.path, i.sha, i.symbols FROM input AS i"
        " ORDER BY i.path, i.sha"
        " ON CONFLICT (repository_id, path, file_sha256) DO UPDATE SET symbols = EXCLUDED.symbols"
        " WHERE file_symbols.symbols IS DISTINCT FROM EXCLUDED.symbols"
        " RETURNING path, file_sha256, symbols),"
        " gone AS (DELETE FROM symbol_names AS n USING changed AS c"
        " WHERE n.repository_id = %(repository_id)s AND n.path = c.path"
        " AND n.file_sha256 = c.file_sha256)"
        " INSERT INTO symbol_names (repository_id, path, file_sha256, name, qualified_name, kind)"
        " SELECT %(repository_id)s, c.path, c.file_sha256, s ->> 0, s ->> 1, s ->> 2"
        " FROM changed AS c CROSS JOIN jsonb_array_elements(c.symbols) AS s",
        {"repository_id": repository_id, "rows": rows_json},
    )


def symbols(repo: RepoRef, paths: list[str], shas: list[str]) -> Query:
    return Query(
        "SELECT fs.path, fs.symbols FROM file_symbols AS fs"
        " JOIN unnest(%(paths)s::text[], %(shas)s::text[]) AS want (path, sha)"
        " ON want.path = fs.path AND want.sha = fs.file_sha256"
        " WHERE fs.repository_id = (SELECT id FROM repositories"
        " WHERE tenant_id = %(tenant)s AND name = %(name)s)",
        {"tenant": repo.tenant, "name": repo.name, "paths": paths, "shas": shas},
    )


def symbol_candidates(
    snapshot_id: int, names: list[str], kinds: list[str], preferred: list[str], per_kind: int
) -> Query:
    """(name, qualified name, kind, path) of the symbols called ``names`` of ``kinds`` in
    the snapshot's file versions: every one in a ``preferred`` path, and elsewhere the
    first ``per_kind`` per name and kind by path. Enough to tell "exactly one" from
    "several" (pipeline.analysis.resolution); one short index scan per name and kind,
    however common a name is in the repository."""
    return Query(
        "WITH snap AS (SELECT id, repository_id FROM snapshots WHERE id = %(snapshot_id)s)"
        " SELECT nm.name, c.qualified_name, kd.kind, c.path"
        " FROM snap CROSS JOIN unnest(%(names)s::text[]) AS nm (name)"
        " CROSS JOIN unnest(%(kinds)s::text[]) AS kd (kind)"
        " CROSS JOIN LATERAL (SELECT n.qualified_name, n.path FROM symbol_names AS n"
        " JOIN files AS f ON f.snapshot_id = snap.id AND f.path = n.path"
        " AND f.content_sha256 = n.file_sha256"
        " WHERE n.repository_id = snap.repository_id AND n.name = nm.name AND n.kind = kd.kind"
        " AND NOT (n.path = ANY(%(preferred)s::text[]))"
        " ORDER BY n.path, n.qualified_name LIMIT %(per_kind)s) AS c"
        " UNION ALL"
        " SELECT n.name, n.qualified_name, n.kind, n.path"
        " FROM snap JOIN symbol_names AS n ON n.repository_id = snap.repository_id"
        " JOIN files AS f ON f.snapshot_id = snap.id AND f.path = n.path"
        " AND f.content_sha256 = n.file_sha256"
        " WHERE n.path = ANY(%(preferred)s::text[]) AND n.name = ANY(%(names)s::text[])"
        " AND n.kind = ANY(%(kinds)s::text[])"
        " ORDER BY 1, 3, 4, 2",
        {
            "snapshot_id": snapshot_id,
            "names": names,
            "kinds": kinds,
            "preferred": preferred,
            "per_kind": per_kind,
        },
    )


# --- file graphs waiting for the graph stage (job_file_graphs, migrations/sql/0011) ---


def stage_graphs(job_id: str, paths: list[str], graphs: list[bytes]) -> Query:
    return Query(
        "INSERT INTO job_file_graphs (job_id, path, graph)"
        " SELECT %(job_id)s::uuid, x.path, x.graph"
        " FROM unnest(%(paths)s::text[], %(graphs)s::bytea[]) AS x (path, graph)"
        " ORDER BY x.path"
        " ON CONFLICT (job_id, path) DO UPDATE SET graph = EXCLUDED.graph",
        {"job_id": job_id, "paths": paths, "graphs": graphs},
    )


def staged_paths(job_id: str, after: str, limit: int) -> Query:
    return Query(
        "SELECT path FROM job_file_graphs WHERE job_id = %(job_id)s::uuid AND path > %(after)s"
        " ORDER BY path LIMIT %(limit)s",
        {"job_id": job_id, "after": after, "limit": limit},
    )


def staged_graphs(job_id: str, paths: list[str]) -> Query:
    return Query(
        "SELECT path, graph FROM job_file_graphs"
        " WHERE job_id = %(job_id)s::uuid AND path = ANY(%(paths)s::text[])",
        {"job_id": job_id, "paths": paths},
    )


def unstage(job_id: str, paths: list[str]) -> Query:
    return Query(
        "DELETE FROM job_file_graphs WHERE job_id = %(job_id)s::uuid"
        " AND path = ANY(%(paths)s::text[])",
        {"job_id": job_id, "paths": paths},
    )


def any_staged(job_id: str) -> Query:
    return Query(
        "SELECT EXISTS (SELECT 1 FROM job_file_graphs WHERE job_id = %(job_id)s::uuid)",
        {"job_id": job_id},
    )


def drop_staged(job_id: str) -> Query:
    return Query("DELETE FROM job_file_graphs WHERE job_id = %(job_id)s::uuid", {"job_id": job_id})


def collect_staged(limit: int) -> Query:
    """The waiting file graphs of jobs that ended (or are gone), ``limit`` rows at most."""
    return Query(
        "DELETE FROM job_file_graphs WHERE ctid IN (SELECT g.ctid FROM job_file_graphs AS g"
        " WHERE NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.id = g.job_id"
        " AND j.status IN ('queued', 'running')) LIMIT %(limit)s)",
        {"limit": limit},
    )


def repositories(tenant: str, name: str | None = None) -> Query:
    """(name, default ref's commit, files, chunks, last indexed at, created at, default
    ref, refs) by name. Counts are those of the default ref's snapshot."""
    return Query(
        "SELECT r.name, s.commit_sha,"
        " (SELECT count(*) FROM files AS f WHERE f.snapshot_id = d.snapshot_id),"
        " (SELECT count(*) FROM files AS f JOIN chunks AS c ON c.repository_id = f.repository_id"
        " AND c.path = f.path AND c.file_sha256 = f.content_sha256"
        " WHERE f.snapshot_id = d.snapshot_id),"
        " extract(epoch FROM s.finished_at)::float8, extract(epoch FROM r.created_at)::float8,"
        " r.default_ref, (SELECT count(*) FROM refs AS x WHERE x.repository_id = r.id)"
        " FROM repositories AS r"
        " LEFT JOIN refs AS d ON d.repository_id = r.id AND d.name = r.default_ref"
        " LEFT JOIN snapshots AS s ON s.id = d.snapshot_id"
        " WHERE r.tenant_id = %(tenant)s AND (%(name)s::text IS NULL OR r.name = %(name)s::text)"
        " AND r.deletion_id IS NULL ORDER BY r.name",
        {"tenant": tenant, "name": name},
    )
