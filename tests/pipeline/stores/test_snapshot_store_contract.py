"""One contract for the snapshot store: the fake and PostgreSQL.

The PostgreSQL cases run on a fresh database of the session's real server, migrated with
the shipped migrations; every test works in a tenant of its own. Chunk counts come from
the vector store of the same backend (the fake's, or PostgreSQL's ``chunks`` table).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from config.endpoints import Endpoints
from migrations.runner import run
from pipeline.adapters.fakes.blob_store import InMemoryBlobStore
from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.source_fetcher import InMemorySourceFetcher
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.adapters.postgres.job_store import PgJobStore
from pipeline.adapters.postgres.migrations import PgMigrationTarget
from pipeline.adapters.postgres.snapshot_store import PgSnapshotStore
from pipeline.adapters.postgres.vector_store import PgVectorStore
from pipeline.analysis.chunking import CHUNKER_VERSION
from pipeline.errors import ConflictError, InvalidInputError, NotFoundError
from pipeline.jobs import JobRequest, JobSource, JobStatus, SourceKind, Stage, job_status
from pipeline.models import Chunk, ChunkKind, FileVersion, RepoRef, Span, StoredChunk
from pipeline.ports import JobStore, SnapshotStore, VectorStore
from pipeline.stages import ingest as ingest_stage
from pipeline.stages.commit import commit_job
from pipeline.stages.indexing import JobContext, finish, writes_graph
from pipeline.stages.ingest import IngestOptions, IngestOutcome, ingest, superseded
from pipeline.stages.ref_deletion import delete_ref
from tests.databases import fresh_pg_database

DIM = 384


class Backend:
    """The store under test, its vector store, and a way to read a snapshot's status."""

    def __init__(
        self, snapshots: SnapshotStore, vectors: VectorStore, jobs: JobStore, dsn: str | None
    ) -> None:
        self.snapshots = snapshots
        self.vectors = vectors
        self.jobs = jobs
        self.dsn = dsn

    def status(self, snapshot_id: int) -> str | None:
        if self.dsn is None:
            assert isinstance(self.snapshots, InMemorySnapshotStore)
            return self.snapshots.status(snapshot_id)
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT status FROM snapshots WHERE id = %s", (snapshot_id,))
            found = row.fetchone()
        return None if found is None else str(found[0])


@pytest.fixture(scope="module")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    endpoints: Endpoints = request.getfixturevalue("endpoints")
    with fresh_pg_database(endpoints, "snapshots") as dsn:
        run(PgMigrationTarget(dsn))
        yield dsn


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        vectors, jobs = InMemoryVectorStore(dimension=DIM), InMemoryJobStore()
        yield Backend(InMemorySnapshotStore(vectors, jobs), vectors, jobs, None)
        return
    dsn = request.getfixturevalue("pg_dsn")
    with (
        PgSnapshotStore(dsn, pool_size=4) as store,
        PgVectorStore(dsn, dimension=DIM) as vs,
        PgJobStore(dsn) as pg_jobs,
    ):
        yield Backend(store, vs, pg_jobs, dsn)


@pytest.fixture
def store(backend: Backend) -> SnapshotStore:
    return backend.snapshots


@pytest.fixture
def repo() -> RepoRef:
    return RepoRef(f"t{uuid.uuid4().hex[:8]}", "app")


def fv(path: str, sha: str, size: int = 10) -> FileVersion:
    return FileVersion(path, sha, "python", size)


def files(*versions: FileVersion) -> dict[str, FileVersion]:
    return {f.path: f for f in versions}


V1 = (fv("a.py", "a1"), fv("b.py", "b1"), fv("docs/ü.md", "u1", 0))
V2 = (fv("a.py", "a2"), fv("b.py", "b1"), fv("c.py", "c1", 12345))


def chunk(path: str, sha: str, n: int) -> StoredChunk:
    piece = Chunk(f"{path}#{n}", path, "python", Span(1, 2, 0, 9), "f", ChunkKind.FUNCTION,
                  f"h{n}", 3, "def f(): pass")  # fmt: skip
    return StoredChunk(piece, sha, "model", None)


# --- begin, publish, read ---------------------------------------------------------------


def test_a_begun_snapshot_is_not_searchable_until_published(
    backend: Backend, store: SnapshotStore, repo: RepoRef
) -> None:
    sid = store.begin(repo, "c1", V1)
    assert store.snapshot_files(sid) == files(*V1)
    assert backend.status(sid) == "indexing"
    assert store.searchable_files(repo) == {}
    before = store.repository(repo.tenant, repo.name)
    assert before is not None
    assert (before["searchable_commit"], before["files"], before["last_indexed_at"]) == (
        None, 0, None)  # fmt: skip
    store.publish(repo, sid)
    assert backend.status(sid) == "ready"
    assert store.searchable_files(repo) == files(*V1)
    after = store.repository(repo.tenant, repo.name)
    assert after is not None
    assert (after["name"], after["searchable_commit"], after["files"]) == ("app", "c1", 3)
    assert isinstance(after["last_indexed_at"], float)
    assert abs(after["last_indexed_at"] - time.time()) < 60
    assert isinstance(after["created_at"], float)
    assert after["created_at"] <= after["last_indexed_at"]


def test_publish_supersedes_the_previous_snapshot_and_drops_its_file_list(
    backend: Backend, store: SnapshotStore, repo: RepoRef
) -> None:
    first = store.begin(repo, "c1", V1)
    store.publish(repo, first)
    second = store.begin(repo, "c2", V2)
    assert store.searchable_files(repo) == files(*V1)  # begin leaves search alone
    store.publish(repo, second)
    assert store.searchable_files(repo) == files(*V2)
    assert (backend.status(first), backend.status(second)) == ("superseded", "ready")
    assert store.snapshot_files(first) == {}
    assert (store.repository(repo.tenant, repo.name) or {})["searchable_commit"] == "c2"
    store.publish(repo, second)  # replayed: nothing changes
    assert store.searchable_files(repo) == files(*V2)


def test_a_superseded_commit_can_be_indexed_again(
    backend: Backend, store: SnapshotStore, repo: RepoRef
) -> None:
    first = store.begin(repo, "c1", V1)
    store.publish(repo, first)
    store.publish(repo, store.begin(repo, "c2", V2))
    with pytest.raises(InvalidInputError, match="superseded"):
        store.publish(repo, first)
    again = store.begin(repo, "c1", V1)
    assert (again, backend.status(again)) == (first, "indexing")
    store.publish(repo, again)
    assert store.searchable_files(repo) == files(*V1)


def test_beginning_the_searchable_commit_again_keeps_it_ready_and_searchable(
    backend: Backend, store: SnapshotStore, repo: RepoRef
) -> None:
    sid = store.begin(repo, "c1", V1)
    store.publish(repo, sid)
    again = store.begin(repo, "c1", V1)
    assert again == sid
    assert backend.status(sid) == "ready"
    assert store.searchable_files(repo) == files(*V1)
    assert (store.repository(repo.tenant, repo.name) or {})["last_indexed_at"] is not None
    store.abandon(sid, "failed")  # the re-index failed: search keeps the snapshot
    assert backend.status(sid) == "ready"
    assert store.searchable_files(repo) == files(*V1)


def test_an_abandoned_snapshot_is_marked_and_cannot_be_published_until_begun_again(
    backend: Backend, store: SnapshotStore, repo: RepoRef
) -> None:
    live = store.begin(repo, "c1", V1)
    store.publish(repo, live)
    doomed = store.begin(repo, "c2", V2)
    store.abandon(doomed, "cancelled")
    assert backend.status(doomed) == "cancelled"
    assert store.snapshot_files(doomed) == {}
    with pytest.raises(InvalidInputError, match=f"snapshot {doomed} .* cancelled"):
        store.publish(repo, doomed)
    assert store.searchable_files(repo) == files(*V1)
    store.abandon(doomed, "failed")  # no longer indexing: left as it is
    assert backend.status(doomed) == "cancelled"
    assert store.begin(repo, "c2", V2) == doomed
    assert (backend.status(doomed), store.snapshot_files(doomed)) == ("indexing", files(*V2))
    with pytest.raises(InvalidInputError, match="'ready'"):
        store.abandon(doomed, "ready")
    store.abandon(10**9, "failed")  # unknown: nothing happens


def test_begin_replaces_the_file_list_of_its_snapshot(store: SnapshotStore, repo: RepoRef) -> None:
    sid = store.begin(repo, "c1", V1)
    assert store.begin(repo, "c1", V2) == sid
    assert store.snapshot_files(sid) == files(*V2)
    assert store.begin(repo, "c1", []) == sid
    assert store.snapshot_files(sid) == {}


@pytest.mark.timeout(60)
def test_ten_thousand_files_go_in_and_come_back(store: SnapshotStore, repo: RepoRef) -> None:
    many = [fv(f"src/pkg{n % 97}/mod_{n}.py", f"{n:064x}", n) for n in range(12_000)]
    sid = store.begin(repo, "big", many)
    store.publish(repo, sid)
    assert store.searchable_files(repo) == files(*many)
    assert (store.repository(repo.tenant, repo.name) or {})["files"] == 12_000


def test_publish_refuses_a_snapshot_of_another_repository_or_an_unknown_one(
    store: SnapshotStore, repo: RepoRef
) -> None:
    mine = store.begin(repo, "c1", V1)
    store.publish(repo, mine)
    other = RepoRef(repo.tenant, "lib")
    theirs = store.begin(other, "c1", V2)
    with pytest.raises(InvalidInputError, match=f"snapshot {theirs} is not one of"):
        store.publish(repo, theirs)
    with pytest.raises(InvalidInputError, match="is not one of"):
        store.publish(repo, 10**9)
    with pytest.raises(InvalidInputError, match="does not exist"):
        store.publish(RepoRef(repo.tenant, "never"), mine)
    assert store.searchable_files(repo) == files(*V1)
    assert store.searchable_files(other) == {}


@pytest.mark.timeout(60)
def test_readers_see_one_whole_snapshot_while_publishes_switch(
    store: SnapshotStore, repo: RepoRef
) -> None:
    width = 300
    store.publish(repo, store.begin(repo, "c0", [fv(f"f{i}", "s0") for i in range(width)]))
    seen: list[dict[str, FileVersion]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(store.searchable_files(repo))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(1, 8):
            sid = store.begin(repo, f"c{n}", [fv(f"f{i}", f"s{n}") for i in range(width)])
            store.publish(repo, sid)
    finally:
        stop.set()
        reader.join()
    assert seen
    for snapshot in seen:
        assert len(snapshot) == width
        assert len({f.sha256 for f in snapshot.values()}) == 1


# --- symbols ------------------------------------------------------------------------------


def test_symbols_are_kept_per_file_version(store: SnapshotStore, repo: RepoRef) -> None:
    found = [("f", "pkg.a.f", "function"), ("A", "pkg.a.A", "class")]
    store.put_symbols(repo, {("a.py", "a1"): found, ("b.py", "b1"): []})
    assert store.symbols(repo, {"a.py": "a1", "b.py": "b1", "c.py": "c1"}) == {
        "a.py": found,
        "b.py": [],
    }
    assert store.symbols(repo, {"a.py": "a2"}) == {}
    assert store.symbols(repo, {}) == {}
    store.put_symbols(repo, {("a.py", "a1"): [("g", "pkg.a.g", "function")]})
    assert store.symbols(repo, {"a.py": "a1"}) == {"a.py": [("g", "pkg.a.g", "function")]}
    assert store.symbols(RepoRef(f"{repo.tenant}-b", repo.name), {"a.py": "a1"}) == {}


def test_publish_drops_symbols_of_versions_no_current_snapshot_lists(
    store: SnapshotStore, repo: RepoRef
) -> None:
    sym = [("f", "m.f", "function")]
    store.put_symbols(repo, {(f.path, f.sha256): sym for f in (*V1, *V2)})
    store.put_symbols(repo, {("z.py", "z9"): sym})
    pending = store.begin(repo, "c9", [fv("z.py", "z9")])  # another job still indexing
    store.publish(repo, store.begin(repo, "c2", V2))
    every = {"a.py": "a1", "docs/ü.md": "u1", "c.py": "c1", "b.py": "b1", "z.py": "z9"}
    assert set(store.symbols(repo, every)) == {"c.py", "b.py", "z.py"}
    assert store.symbols(repo, {"a.py": "a2"}) == {"a.py": sym}
    store.abandon(pending, "failed")
    store.publish(repo, store.begin(repo, "c3", V1))
    assert set(store.symbols(repo, every | {"a.py": "a2"})) == {"b.py"}


def test_a_snapshot_is_read_a_page_at_a_time_and_searchable_versions_by_path(
    store: SnapshotStore, repo: RepoRef
) -> None:
    sid = store.begin(repo, "c1", V1)
    assert store.snapshot_page(sid, "", 2) == [fv("a.py", "a1"), fv("b.py", "b1")]
    assert store.snapshot_page(sid, "b.py", 2) == [fv("docs/ü.md", "u1", 0)]
    assert store.snapshot_page(sid, "docs/ü.md", 2) == []
    assert store.searchable_versions(repo, ["a.py"]) == {}
    store.publish(repo, sid)
    assert store.searchable_versions(repo, ["a.py", "docs/ü.md", "zz.py"]) == {
        "a.py": fv("a.py", "a1"),
        "docs/ü.md": fv("docs/ü.md", "u1", 0),
    }
    assert store.searchable_versions(repo, []) == {}
    assert store.searchable_versions(RepoRef(f"{repo.tenant}-b", repo.name), ["a.py"]) == {}


def test_put_symbols_keeps_them_by_name_for_the_candidates_of_a_snapshot(
    store: SnapshotStore, repo: RepoRef
) -> None:
    many = [fv(f"m{i}.py", f"s{i}") for i in range(5)]
    store.put_symbols(
        repo,
        {
            **{(f.path, f.sha256): [("run", f"m.run{f.path}", "function")] for f in many},
            ("a.py", "a1"): [("Cart", "a.Cart", "class"), ("run", "a.Cart.run", "method")],
            ("a.py", "a2"): [("Other", "a.Other", "class")],  # a version not in the snapshot
            ("b.py", "b1"): [("Cart", "b.Cart", "class"), ("Cart", "b.Cart", "class")],
        },
    )
    sid = store.begin(repo, "c1", [fv("a.py", "a1"), fv("b.py", "b1"), *many])
    found = store.symbol_candidates(
        sid, {"Cart", "run", "Other", "nope"}, {"class", "function", "method"}, {"m3.py"}
    )
    assert found == [
        ("Cart", "a.Cart", "class", "a.py"),
        ("Cart", "b.Cart", "class", "b.py"),  # two per name and kind: "several" is known
        ("run", "m.runm0.py", "function", "m0.py"),
        ("run", "m.runm1.py", "function", "m1.py"),
        ("run", "m.runm3.py", "function", "m3.py"),  # preferred: always there
        ("run", "a.Cart.run", "method", "a.py"),
    ]
    assert store.symbol_candidates(sid, {"Cart"}, {"function"}, set()) == []
    assert store.symbol_candidates(sid, set(), {"class"}, set()) == []
    # A new extractor's symbols for a version replace the old ones, by name too.
    store.put_symbols(repo, {("a.py", "a1"): [("Basket", "a.Basket", "class")]})
    assert store.symbol_candidates(sid, {"Cart", "Basket"}, {"class"}, set()) == [
        ("Basket", "a.Basket", "class", "a.py"),
        ("Cart", "b.Cart", "class", "b.py"),
        ("Cart", "b.Cart", "class", "b.py"),
    ]
    store.publish(repo, store.begin(repo, "c2", [fv("b.py", "b1")]))
    store.abandon(sid, "failed")  # drops a.py's versions (only sid listed them)
    again = store.begin(repo, "c3", [fv("a.py", "a1"), fv("b.py", "b1")])
    assert store.symbol_candidates(again, {"Basket", "Cart"}, {"class"}, set()) == [
        ("Cart", "b.Cart", "class", "b.py"),
        ("Cart", "b.Cart", "class", "b.py"),
    ]


def test_waiting_file_graphs_are_kept_per_job_until_written_or_dropped(
    store: SnapshotStore,
) -> None:
    job, other = str(uuid.uuid4()), str(uuid.uuid4())
    store.stage_graphs(job, {f"p{i:02d}.py": bytes([i]) * 3 for i in range(25)} | {"ü.py": b""})
    store.stage_graphs(other, {"p00.py": b"other"})
    store.stage_graphs(job, {"p00.py": b"new"})  # redelivered: replaced, not doubled
    assert store.staged_paths(job, "", 10) == [f"p{i:02d}.py" for i in range(10)]
    assert store.staged_paths(job, "p09.py", 100)[-2:] == ["p24.py", "ü.py"]
    assert store.staged_graphs(job, ["p00.py", "p01.py", "gone.py"]) == {
        "p00.py": b"new",
        "p01.py": b"\x01" * 3,
    }
    store.unstage(job, [f"p{i:02d}.py" for i in range(25)])
    assert store.any_staged(job)
    assert store.staged_paths(job) == ["ü.py"]
    store.unstage(job, ["ü.py", "ü.py"])
    assert not store.any_staged(job) and store.staged_graphs(job, ["p00.py"]) == {}
    assert store.staged_paths(other) == ["p00.py"]
    store.drop_staged(other)
    assert not store.any_staged(other)
    with pytest.raises(InvalidInputError, match="not a UUID"):
        store.stage_graphs("job-1", {"a.py": b""})


def test_collect_forgets_the_waiting_graphs_of_jobs_that_are_not_live(
    backend: Backend, store: SnapshotStore, repo: RepoRef
) -> None:
    live, ended, gone = (str(uuid.uuid4()) for _ in range(3))
    for job_id in (live, ended):
        request = JobRequest(repo, JobSource(SourceKind.PATH, "/src"), commit=f"c-{job_id}")
        backend.jobs.create(request, job_id=job_id, commit=None)
        assert backend.jobs.start(job_id, Stage.CHUNK)
    backend.jobs.finish(ended, JobStatus.FAILED, "x")
    for job_id in (live, ended, gone):
        store.stage_graphs(job_id, {"a.py": b"1", "b.py": b"2"})
    assert store.collect_staged(limit=3) == 3
    assert store.collect_staged(limit=10) == 1
    assert store.collect_staged() == 0
    assert store.staged_paths(live) == ["a.py", "b.py"]
    assert not store.any_staged(ended) and not store.any_staged(gone)


# --- repositories ------------------------------------------------------------------------


def test_repositories_are_listed_per_tenant_by_name_with_counts(
    backend: Backend, store: SnapshotStore, repo: RepoRef
) -> None:
    lib = RepoRef(repo.tenant, "lib")
    store.publish(repo, store.begin(repo, "c1", V1))
    store.begin(lib, "x1", V2)
    backend.vectors.ensure_repository(repo)
    backend.vectors.upsert_chunks(
        repo,
        [chunk("a.py", "a1", 1), chunk("a.py", "a1", 2), chunk("b.py", "b1", 1),
         chunk("a.py", "a0", 1), chunk("gone.py", "g1", 1)],
    )  # fmt: skip
    listed = store.repositories(repo.tenant)
    assert [r["name"] for r in listed] == ["app", "lib"]
    app, unpublished = listed
    assert set(app) == {"name", "searchable_commit", "files", "chunks", "last_indexed_at",
                        "created_at", "default_ref", "refs"}  # fmt: skip
    assert (app["searchable_commit"], app["files"], app["chunks"]) == ("c1", 3, 3)
    assert (app["default_ref"], app["refs"], unpublished["refs"]) == ("main", 1, 0)
    assert (unpublished["searchable_commit"], unpublished["files"]) == (None, 0)
    assert (unpublished["chunks"], unpublished["last_indexed_at"]) == (0, None)
    assert store.repository(repo.tenant, "app") == app
    assert store.repository(repo.tenant, "missing") is None


def test_tenants_never_see_each_others_repositories(store: SnapshotStore, repo: RepoRef) -> None:
    store.publish(repo, store.begin(repo, "c1", V1))
    other = f"{repo.tenant}-b"
    assert store.repositories(other) == []
    assert store.repository(other, repo.name) is None
    assert store.searchable_files(RepoRef(other, repo.name)) == {}
    store.publish(RepoRef(other, repo.name), store.begin(RepoRef(other, repo.name), "c2", V2))
    assert [r["searchable_commit"] for r in store.repositories(other)] == ["c2"]
    assert [r["searchable_commit"] for r in store.repositories(repo.tenant)] == ["c1"]


# --- refs ---------------------------------------------------------------------------


def test_each_ref_holds_its_own_snapshot_and_a_new_ref_diffs_against_the_default(
    store: SnapshotStore, repo: RepoRef
) -> None:
    assert store.publish(repo, store.begin(repo, "c1", V1)) is None
    assert store.default_ref(repo) == "main"
    # A new ref has nothing of its own: its base is the default ref's snapshot.
    assert store.searchable_files(repo, "feature/x") == {}
    assert store.searchable_files(repo, "feature/x", or_default=True) == files(*V1)
    assert store.searchable_versions(repo, ["b.py"], "feature/x", or_default=True) == files(V1[1])
    assert store.publish(repo, store.begin(repo, "c2", V2), "feature/x", 5) is None
    assert store.searchable_files(repo, "feature/x") == files(*V2)
    assert store.searchable_files(repo) == files(*V1)  # the default ref is untouched
    listed = store.refs(repo)
    assert [(r.name, r.commit, r.default, r.files) for r in listed] == [
        ("main", "c1", True, 3),
        ("feature/x", "c2", False, 3),
    ]
    assert store.repositories(repo.tenant)[0]["refs"] == 2


def test_a_job_created_earlier_never_replaces_a_ref_a_later_one_published(
    store: SnapshotStore, repo: RepoRef
) -> None:
    store.publish(repo, store.begin(repo, "c1", V1), "main", 1)
    newer = store.begin(repo, "c3", V2)
    assert store.publish(repo, newer, "main", 9) is None
    older = store.begin(repo, "c2", [fv("old.py", "o1")])
    assert store.publish(repo, older, "main", 4) == "c3"  # finished last, created first
    assert store.searchable_files(repo) == files(*V2)
    assert store.held_versions(repo, ["old.py"]) == {"old.py": set()}  # nothing holds it
    # The same job publishing again (a redelivered commit) is not "older" than itself.
    assert store.publish(repo, newer, "main", 9) is None


def test_two_refs_at_one_commit_share_a_snapshot_until_both_let_it_go(
    store: SnapshotStore, repo: RepoRef
) -> None:
    shared = store.begin(repo, "c1", V1)
    store.publish(repo, shared, "main", 1)
    assert store.begin(repo, "c1", V1) == shared  # a ref's snapshot stays ready
    store.publish(repo, shared, "release", 2)
    store.publish(repo, store.begin(repo, "c2", V2), "main", 3)
    # "release" still holds c1: its files (and its versions) stay.
    assert store.searchable_files(repo, "release") == files(*V1)
    held = store.held_versions(repo, ["a.py", "docs/ü.md", "nowhere.py"])
    assert held == {"a.py": {"a1", "a2"}, "docs/ü.md": {"u1"}, "nowhere.py": set()}
    assert store.delete_ref(repo, "release") is True
    assert store.delete_ref(repo, "release") is False
    assert store.searchable_files(repo, "release") == {}
    assert store.held_versions(repo, ["a.py", "docs/ü.md"]) == {"a.py": {"a2"}, "docs/ü.md": set()}
    assert [r.name for r in store.refs(repo)] == ["main"]


def test_the_default_ref_cannot_be_deleted(store: SnapshotStore, repo: RepoRef) -> None:
    store.publish(repo, store.begin(repo, "c1", V1))
    with pytest.raises(ConflictError, match="default ref"):
        store.delete_ref(repo, "main")
    assert store.searchable_files(repo) == files(*V1)
    with pytest.raises(InvalidInputError, match="ref"):
        store.delete_ref(repo, "bad..ref")


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "named"),
    [
        ([fv("a.py", "1"), fv("a.py", "2")], "file path 'a.py' is listed twice"),
        ([fv("a\x00.py", "1")], "file path"),
        ([fv("", "1")], "file path is empty"),
        ([fv("a.py", "")], "sha256 of 'a.py' is empty"),
        ([fv("a.py", "1", -1)], "size of 'a.py' is -1"),
    ],
)
def test_bad_file_lists_are_refused_naming_the_file(
    store: SnapshotStore, repo: RepoRef, listed: Sequence[FileVersion], named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        store.begin(repo, "c1", listed)
    assert store.repository(repo.tenant, repo.name) is None


def test_other_bad_input_is_refused_naming_it(store: SnapshotStore, repo: RepoRef) -> None:
    with pytest.raises(InvalidInputError, match="commit is empty"):
        store.begin(repo, "", V1)
    with pytest.raises(InvalidInputError, match="tenant 'Nope'"):
        store.begin(RepoRef("Nope", "app"), "c1", V1)
    with pytest.raises(InvalidInputError, match="tenant 'Nope'"):
        store.repositories("Nope")
    with pytest.raises(InvalidInputError, match=r"symbol .* of 'a\.py'"):
        store.put_symbols(repo, {("a.py", "a1"): [("f", "m.f")]})  # type: ignore[list-item]


# --- the commit stage on refs (pipeline/stages/commit.py) ------------------------------


def _job_at(
    backend: Backend, repo: RepoRef, commit: str, ref: str | None, listed: Sequence[FileVersion]
) -> str:
    request = JobRequest(repo, JobSource(SourceKind.PATH, "/src"), commit=commit, ref_name=ref)
    job, created = backend.jobs.create(request, job_id=str(uuid.uuid4()), commit=commit)
    assert created
    assert backend.jobs.start(job.job_id, Stage.INGEST, commit)
    backend.jobs.set_snapshot(job.job_id, backend.snapshots.begin(repo, commit, listed))
    return job.job_id


def test_jobs_that_finish_out_of_order_leave_the_newer_commit_on_the_ref(
    backend: Backend, repo: RepoRef
) -> None:
    ctx = JobContext(backend.jobs, backend.snapshots, InMemoryJobBoard(), lambda _t, _k: None)
    backend.vectors.ensure_repository(repo)
    backend.vectors.upsert_chunks(repo, [chunk("a.py", "a1", 1), chunk("a.py", "a2", 1)])
    older = _job_at(backend, repo, "c1", None, V1)  # created first ...
    newer = _job_at(backend, repo, "c2", None, V2)
    graph = InMemoryGraphStore()
    assert commit_job(ctx, newer, vectors=backend.vectors, graph=graph) is JobStatus.DONE
    # ... finishes last: done, but the ref keeps the newer commit.
    assert commit_job(ctx, older, vectors=backend.vectors, graph=graph) is JobStatus.DONE
    assert backend.snapshots.searchable_files(repo) == files(*V2)
    lost = backend.jobs.get(older)
    assert lost is not None and lost.ref_name == "main"
    assert lost.message.startswith("not published: ref 'main' already holds commit c2")
    assert job_status(lost, 0.0)["published"] is False
    won = backend.jobs.get(newer)
    assert won is not None and job_status(won, 0.0)["published"] is True
    # The older commit's own version (a1) went with it; the published one (a2) stays.
    assert {(p, s) for p, s, _ in backend.vectors.chunk_keys(repo)} == {("a.py", "a2")}


def test_a_branch_job_publishes_its_ref_and_leaves_the_default_ref_and_shared_rows(
    backend: Backend, repo: RepoRef
) -> None:
    ctx = JobContext(backend.jobs, backend.snapshots, InMemoryJobBoard(), lambda _t, _k: None)
    graph = InMemoryGraphStore()
    main = _job_at(backend, repo, "c1", None, V1)
    assert commit_job(ctx, main, vectors=backend.vectors, graph=graph) is JobStatus.DONE
    backend.vectors.ensure_repository(repo)
    backend.vectors.upsert_chunks(repo, [chunk("a.py", "a1", 1), chunk("a.py", "a2", 1)])
    branch = _job_at(backend, repo, "c2", "feature/x", V2)
    assert commit_job(ctx, branch, vectors=backend.vectors, graph=graph) is JobStatus.DONE
    assert backend.snapshots.searchable_files(repo) == files(*V1)
    assert backend.snapshots.searchable_files(repo, "feature/x") == files(*V2)
    # Both versions are held (one by each ref): no row went.
    assert {(p, s) for p, s, _ in backend.vectors.chunk_keys(repo)} == {
        ("a.py", "a1"),
        ("a.py", "a2"),
    }
    freed = delete_ref(backend.snapshots, backend.vectors, repo, "feature/x")
    assert freed == {"repo": "app", "ref": "feature/x", "commit": "c2", "chunks_deleted": 1}
    assert {(p, s) for p, s, _ in backend.vectors.chunk_keys(repo)} == {("a.py", "a1")}
    with pytest.raises(NotFoundError, match="no ref 'feature/x'"):
        delete_ref(backend.snapshots, backend.vectors, repo, "feature/x")


def test_a_job_a_newer_one_overtook_does_no_work_and_writes_no_graph(
    backend: Backend, repo: RepoRef
) -> None:
    ctx = JobContext(backend.jobs, backend.snapshots, InMemoryJobBoard(), lambda _t, _k: None)
    request = JobRequest(repo, JobSource(SourceKind.PATH, "/src"), commit="c1")
    older, _ = backend.jobs.create(request, job_id=str(uuid.uuid4()), commit="c1")
    newer = _job_at(backend, repo, "c2", None, V2)
    assert writes_graph(ctx, older) and not superseded(ctx, older)  # nothing published yet
    assert commit_job(ctx, newer, vectors=backend.vectors, graph=InMemoryGraphStore())
    assert backend.snapshots.published_seq(repo, "main") > older.seq
    assert not writes_graph(ctx, older)
    assert superseded(ctx, older)  # at its ingest: it ends at once
    ended = backend.jobs.get(older.job_id)
    assert ended is not None and ended.status is JobStatus.DONE
    assert "not published" in ended.message and job_status(ended, 0.0)["published"] is False
    assert backend.snapshots.searchable_files(repo) == files(*V2)
    assert backend.snapshots.published_seq(repo, "feature/none") == 0


def test_a_snapshot_a_live_job_builds_outlives_the_deletion_of_the_ref_that_held_it(
    backend: Backend, repo: RepoRef
) -> None:
    ctx = JobContext(backend.jobs, backend.snapshots, InMemoryJobBoard(), lambda _t, _k: None)
    first = _job_at(backend, repo, "c1", None, V1)
    assert commit_job(ctx, first, vectors=backend.vectors, graph=InMemoryGraphStore())
    backend.snapshots.publish(repo, backend.snapshots.begin(repo, "c1", V1), "release", 2)
    # A tag's job at the same commit begins the shared snapshot (ready: refs hold it) ...
    tag = _job_at(backend, repo, "c1", "v1.0", V1)
    assert delete_ref(backend.snapshots, backend.vectors, repo, "release")["ref"] == "release"
    backend.snapshots.publish(repo, backend.snapshots.begin(repo, "c2", V2), "main", 10**6)
    # ... so neither deletion nor the default ref moving on takes its file list away.
    job = backend.jobs.get(tag)
    assert job is not None and job.snapshot_id is not None
    assert backend.snapshots.snapshot_files(job.snapshot_id) == files(*V1)
    assert backend.snapshots.held_versions(repo, ["docs/ü.md"]) == {"docs/ü.md": {"u1"}}
    assert commit_job(ctx, tag, vectors=backend.vectors, graph=InMemoryGraphStore())
    assert backend.snapshots.searchable_files(repo, "v1.0") == files(*V1)


def test_a_failed_jobs_snapshot_no_longer_holds_its_versions(
    backend: Backend, repo: RepoRef
) -> None:
    ctx = JobContext(backend.jobs, backend.snapshots, InMemoryJobBoard(), lambda _t, _k: None)
    failed = _job_at(backend, repo, "c9", "feature/y", [fv("only.py", "o1")])
    assert backend.snapshots.held_versions(repo, ["only.py"]) == {"only.py": {"o1"}}
    job = backend.jobs.get(failed)
    assert job is not None
    assert finish(ctx, job, JobStatus.FAILED, "clone failed")
    assert backend.snapshots.held_versions(repo, ["only.py"]) == {"only.py": set()}


def test_a_done_job_is_answered_again_only_while_its_ref_holds_its_commit(
    backend: Backend, repo: RepoRef
) -> None:
    ctx = JobContext(backend.jobs, backend.snapshots, InMemoryJobBoard(), lambda _t, _k: None)
    graph = InMemoryGraphStore()
    c1 = _job_at(backend, repo, "c1", None, V1)
    assert commit_job(ctx, c1, vectors=backend.vectors, graph=graph)
    request = JobRequest(repo, JobSource(SourceKind.PATH, "/src"), commit="c1")
    same, created = backend.jobs.create(request, job_id=str(uuid.uuid4()), commit="c1")
    assert (same.job_id, created) == (c1, False)  # main holds c1: the done job
    c2 = _job_at(backend, repo, "c2", None, V2)
    assert commit_job(ctx, c2, vectors=backend.vectors, graph=graph)
    # main moved on to c2; asking for c1 again (a force push back) is a new job, which
    # publishes c1 again: the ref goes back.
    back, created = backend.jobs.create(request, job_id=str(uuid.uuid4()), commit="c1")
    assert created and back.job_id != c1
    assert backend.jobs.start(back.job_id, Stage.INGEST, "c1")
    backend.jobs.set_snapshot(back.job_id, backend.snapshots.begin(repo, "c1", V1))
    assert commit_job(ctx, back.job_id, vectors=backend.vectors, graph=graph)
    assert backend.snapshots.searchable_files(repo) == files(*V1)


# --- bounded by the change, not the repository (issue 22 item 3) ------------------------


def test_snapshot_changes_name_the_paths_that_differ_from_the_refs_snapshot(
    store: SnapshotStore, repo: RepoRef
) -> None:
    first = store.begin(repo, "c1", V1)
    # Nothing held yet: every listed path is new, none deleted.
    assert store.snapshot_changes(repo, first) == type(store.snapshot_changes(repo, first))(
        frozenset({"a.py", "b.py", "docs/ü.md"}), (), 3
    )
    store.publish(repo, first)
    assert store.snapshot_changes(repo, first).changed == frozenset()  # the ref holds it
    second = store.begin(repo, "c2", V2)
    changes = store.snapshot_changes(repo, second)
    assert changes.changed == {"a.py", "docs/ü.md", "c.py"}  # b.py: same version
    assert changes.deleted == ("docs/ü.md",) and changes.files == 3
    # A new ref diffs against the default ref's snapshot, and deletes nothing of it.
    branch = store.begin(repo, "c3", [*V1[:2], fv("x.py", "x1")])
    on_branch = store.snapshot_changes(repo, branch, "feature/x")
    assert on_branch.changed == {"docs/ü.md", "x.py"} and on_branch.deleted == ()
    # Another tenant's repository of the same name is not the base.
    other = RepoRef(f"{repo.tenant}-b", repo.name)
    theirs = store.begin(other, "c9", V2)
    assert store.snapshot_changes(other, theirs).changed == {"a.py", "b.py", "c.py"}


def test_a_publish_given_the_changed_paths_collects_their_stale_symbols(
    store: SnapshotStore, repo: RepoRef
) -> None:
    sym = [("f", "m.f", "function")]
    store.publish(repo, store.begin(repo, "c1", V1))
    second = store.begin(repo, "c2", V2)
    store.put_symbols(repo, {(f.path, f.sha256): sym for f in (*V1, *V2)})
    changes = store.snapshot_changes(repo, second)
    store.publish(repo, second, changed=changes.changed)
    every = {"a.py": "a1", "docs/ü.md": "u1", "b.py": "b1", "c.py": "c1"}
    assert set(store.symbols(repo, every)) == {"b.py", "c.py"}
    assert store.symbols(repo, {"a.py": "a2"}) == {"a.py": sym}


def test_an_abandoned_snapshot_takes_the_symbols_only_it_listed(
    store: SnapshotStore, repo: RepoRef
) -> None:
    sym = [("f", "m.f", "function")]
    store.publish(repo, store.begin(repo, "c1", V1))
    store.put_symbols(repo, {("z.py", "z9"): sym, ("a.py", "a1"): sym})
    failed = store.begin(repo, "c9", [*V1, fv("z.py", "z9")])
    store.abandon(failed, "failed")
    assert store.symbols(repo, {"z.py": "z9", "a.py": "a1"}) == {"a.py": sym}


@pytest.mark.parametrize("size", [20, 400])
def test_a_one_file_change_commits_reading_rows_bounded_by_the_change(
    backend: Backend, repo: RepoRef, size: int
) -> None:
    """The commit of a one-file change reads back the changed file's rows, whatever the
    repository's size (it read both whole file lists before)."""
    ctx = JobContext(backend.jobs, backend.snapshots, InMemoryJobBoard(), lambda _t, _k: None)
    graph = InMemoryGraphStore()
    listed = [fv(f"pkg/m{i:04}.py", f"s{i}") for i in range(size)]
    first = _job_at(backend, repo, "c1", None, listed)
    assert commit_job(ctx, first, vectors=backend.vectors, graph=graph) is JobStatus.DONE
    changed = [*listed[:-1], fv(listed[-1].path, "new")]
    second = _job_at(backend, repo, "c2", None, changed)
    before = backend.snapshots.rows_read  # type: ignore[attr-defined]
    assert commit_job(ctx, second, vectors=backend.vectors, graph=graph) is JobStatus.DONE
    assert backend.snapshots.rows_read - before == 1  # type: ignore[attr-defined]
    assert backend.snapshots.searchable_files(repo) == files(*changed)


# --- chunker version: an index never mixes two chunk shapes ------------------------------


def test_a_snapshot_chunked_by_an_older_chunker_is_chunked_again_whole_once(
    backend: Backend, repo: RepoRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged files (same sha256) of a snapshot an older chunker made count as changed
    on the next job, every one of them; the job after that finds nothing to do."""
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a.py").write_text("def f():\n    return 1\n")
    (tree / "b.py").write_text("class B:\n    x = 2\n")
    ctx = JobContext(backend.jobs, backend.snapshots, InMemoryJobBoard(), lambda _t, _k: None)

    def run_job() -> dict[str, int]:
        request = JobRequest(repo, JobSource(SourceKind.PATH, "/src"))
        job, _ = backend.jobs.create(request, job_id=str(uuid.uuid4()), commit=None)
        outcome = ingest(
            ctx,
            job.job_id,
            fetcher=InMemorySourceFetcher({"/src": tree}),
            blobs=InMemoryBlobStore(),
            workdir=tmp_path / "w",
            options=IngestOptions(max_file_bytes=1_000_000),
        )
        assert outcome is IngestOutcome.ENQUEUED
        counters = ctx.board.counters(job.job_id)
        assert commit_job(ctx, job.job_id, vectors=backend.vectors, graph=InMemoryGraphStore()) in {
            JobStatus.DONE
        }
        return counters

    assert backend.snapshots.chunker_version(repo) is None
    monkeypatch.setattr(ingest_stage, "CHUNKER_VERSION", CHUNKER_VERSION - 1)
    first = run_job()
    assert (first["files.todo"], first["chunker.version"]) == (2, CHUNKER_VERSION - 1)
    assert backend.snapshots.chunker_version(repo) == CHUNKER_VERSION - 1
    assert backend.snapshots.chunker_version(repo, "feature/x", or_default=True) == (
        CHUNKER_VERSION - 1
    )
    assert backend.snapshots.chunker_version(repo, "feature/x") is None
    # Another tenant's repository of the same name has no snapshot: nothing leaks.
    assert backend.snapshots.chunker_version(RepoRef("someone-else", repo.name)) is None
    monkeypatch.setattr(ingest_stage, "CHUNKER_VERSION", CHUNKER_VERSION)
    second = run_job()
    assert (second["files.todo"], second["files.rechunked"]) == (2, 2)
    assert second["chunker.version"] == CHUNKER_VERSION
    assert backend.snapshots.chunker_version(repo) == CHUNKER_VERSION
    third = run_job()
    assert (third["files.todo"], third["files.rechunked"], third["skipped.unchanged"]) == (0, 0, 2)
