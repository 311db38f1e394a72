"""Reconcile on fakes: the drift between the snapshot and the two stores, and its repair."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.adapters.fakes.embedder import InMemoryEmbedder
from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.vector_store import InMemoryVectorStore
from pipeline.analysis.analyze import FileAnalysis, analyze_file
from pipeline.errors import ConflictError, InvalidInputError
from pipeline.jobs import Job, JobRequest, JobSource, JobStatus, SourceKind, Stage
from pipeline.models import FileGraph, FileVersion, RepoRef, StoredChunk
from pipeline.stages.ingest import plan_changes
from pipeline.stages.reconcile import Stores, find_drift, reconcile

REPO = RepoRef("t1", "shop")
SOURCES = {
    "shop/cart.py": "class Cart:\n    def add(self, item):\n        return price(item)\n",
    "shop/price.py": "def price(item):\n    return 3\n",
    "shop/empty.py": "",
}


def _version(path: str, text: str) -> FileVersion:
    return FileVersion(path, hashlib.sha256(text.encode()).hexdigest(), "python", len(text))


def _v(path: str, sha: str = "a") -> FileVersion:
    return FileVersion(path, sha * 64, "python", 10)


def test_find_drift_names_each_kind_of_disagreement() -> None:
    snapshot = {p: _v(p) for p in ("ok.py", "no_rows.py", "no_node.py", "few_nodes.py", "old.py")}
    a = "a" * 64
    vector_keys = [
        ("ok.py", a, "c1"),
        ("no_node.py", a, "c2"),
        ("few_nodes.py", a, "c3"),
        ("few_nodes.py", a, "c4"),
        ("old.py", a, "c5"),
        ("old.py", "b" * 64, "c6"),  # an older version's row
        ("gone.py", a, "c7"),  # a path the snapshot does not list
    ]
    graph_files = {p: a for p in ("ok.py", "no_rows.py", "few_nodes.py", "old.py", "ghost.py")}
    graph_chunks = [
        ("ok.py", "c1"),
        ("no_rows.py", "c8"),
        ("few_nodes.py", "c3"),
        ("old.py", "c5"),
        ("ghost.py", "c9"),
    ]
    drift = find_drift(snapshot, vector_keys, graph_files, graph_chunks)
    assert drift.vectors_missing == ("no_rows.py",)
    assert drift.graph_missing == ("few_nodes.py", "no_node.py")
    assert drift.vector_ghosts == ("gone.py",)
    assert drift.vector_stale == ("old.py",)
    assert drift.graph_ghosts == ("ghost.py",)
    assert drift.reindex == ("few_nodes.py", "no_node.py", "no_rows.py")
    assert not drift.consistent


def test_a_file_node_at_another_version_is_graph_drift_and_agreement_is_consistent() -> None:
    # logo.png: listed, skipped on its content by the chunk stage, in neither store; not
    # drift (re-indexing it would skip it again, forever).
    snapshot = {"a.py": _v("a.py"), "empty.py": _v("empty.py"), "logo.png": _v("logo.png")}
    a = "a" * 64
    agreeing = find_drift(
        snapshot, [("a.py", a, "c1")], {"a.py": a, "empty.py": a}, [("a.py", "c1")]
    )
    assert agreeing.consistent and agreeing.reindex == ()
    other = find_drift(snapshot, [("a.py", a, "c1")], {"a.py": "b" * 64, "empty.py": a}, [])
    assert other.graph_missing == ("a.py",)


def test_plan_changes_reindexes_the_paths_asked_for_even_when_unchanged() -> None:
    previous = {p: _v(p) for p in ("a.py", "b.py", "c.py")}
    files = [_v("a.py"), _v("b.py"), _v("c.py", "c"), _v("d.py")]
    plan = plan_changes(files, previous, reindex=["b.py", "nowhere.py"])
    assert [f.path for f in plan.changed] == ["b.py", "c.py"]
    assert [f.path for f in plan.added] == ["d.py"]
    assert [f.path for f in plan.unchanged] == ["a.py"]


class World:
    """A repository indexed in fakes, as a done job leaves it."""

    def __init__(self) -> None:
        self.vectors = InMemoryVectorStore()
        self.graph = InMemoryGraphStore()
        self.jobs = InMemoryJobStore()
        self.snapshots = InMemorySnapshotStore(self.vectors)
        self.stores = Stores(self.jobs, self.snapshots, self.vectors, self.graph)
        self.submitted: list[JobRequest] = []
        self.versions = {p: _version(p, t) for p, t in SOURCES.items()}
        embedder = InMemoryEmbedder()
        self.vectors.ensure_repository(REPO)
        graphs = []
        for path, text in SOURCES.items():
            analysis = analyze_file(path, text.encode())
            assert isinstance(analysis, FileAnalysis)
            version = self.versions[path]
            vectors = embedder.embed([c.text for c in analysis.chunks])
            rows = [
                StoredChunk(c, version.sha256, embedder.model_id, v)
                for c, v in zip(analysis.chunks, vectors, strict=True)
            ]
            self.vectors.upsert_chunks(REPO, rows)
            pairs = tuple((c.chunk_id, c.symbol) for c in analysis.chunks)
            graphs.append(FileGraph(version, analysis.extraction, pairs))
        self.graph.write_files(REPO, graphs)
        snapshot_id = self.snapshots.begin(REPO, "c1", list(self.versions.values()))
        self.snapshots.publish(REPO, snapshot_id)
        request = JobRequest(REPO, JobSource(SourceKind.PATH, "/src/shop"), commit="c1")
        job, _ = self.jobs.create(
            request, job_id="00000000-0000-4000-8000-00000000000a", commit="c1"
        )
        self.jobs.start(job.job_id, Stage.INGEST, "c1")
        self.jobs.finish(job.job_id, JobStatus.DONE)

    def submit(self, request: JobRequest) -> Job:
        self.submitted.append(request)
        job, _ = self.jobs.create(
            request, job_id="00000000-0000-4000-8000-00000000000b", commit=None
        )
        return job


def test_a_consistent_repository_is_left_alone() -> None:
    world = World()
    outcome = reconcile(world.stores, REPO, repair=True, submit=world.submit)
    assert outcome.drift.consistent and outcome.drift.files == 3
    assert outcome.job is None and world.submitted == []


def test_repair_deletes_ghosts_and_reindexes_what_a_store_lost() -> None:
    world = World()
    world.vectors.delete_files(REPO, ["shop/price.py"])  # PostgreSQL lost a file's rows
    world.graph.delete_files(REPO, ["shop/cart.py"])  # the graph lost another file
    ghost = analyze_file("shop/old.py", b"def old():\n    return 1\n")
    assert isinstance(ghost, FileAnalysis)
    old = _version("shop/old.py", "def old():\n    return 1\n")
    vector = InMemoryEmbedder().embed([ghost.chunks[0].text])[0]
    world.vectors.upsert_chunks(REPO, [StoredChunk(ghost.chunks[0], old.sha256, "m", vector)])
    world.graph.write_files(REPO, [FileGraph(old, ghost.extraction, ())])

    found = reconcile(world.stores, REPO, repair=False, submit=world.submit)
    assert found.drift.reindex == ("shop/cart.py", "shop/price.py")
    assert found.drift.vector_ghosts == ("shop/old.py",)
    assert found.drift.graph_ghosts == ("shop/old.py",)
    assert found.job is None and world.submitted == []  # a check repairs nothing

    outcome = reconcile(world.stores, REPO, repair=True, submit=world.submit)
    assert outcome.deleted == {"vector_rows": 1, "graph_nodes": 3}
    (request,) = world.submitted
    assert request.reindex_paths == ("shop/cart.py", "shop/price.py")
    assert request.source == JobSource(SourceKind.PATH, "/src/shop")
    assert request.commit is None
    assert "shop/old.py" not in world.graph.file_versions(REPO)
    assert all(p != "shop/old.py" for p, _s, _i in world.vectors.chunk_keys(REPO))
    assert outcome.job is not None
    assert outcome.job.reindex_paths == ("shop/cart.py", "shop/price.py")


def test_everything_reindexes_every_file_and_a_given_source_wins() -> None:
    world = World()
    source = JobSource(SourceKind.GIT, "https://example.com/shop.git", "main")
    reconcile(world.stores, REPO, repair=True, submit=world.submit, source=source, everything=True)
    (request,) = world.submitted
    assert request.reindex_paths == tuple(sorted(SOURCES))
    assert request.source == source


def test_reconcile_refuses_an_unknown_repository_and_a_repository_with_a_live_job() -> None:
    world = World()
    with pytest.raises(InvalidInputError, match="'nope' not found"):
        reconcile(world.stores, RepoRef("t1", "nope"), repair=True, submit=world.submit)
    live = JobRequest(REPO, JobSource(SourceKind.PATH, "/src/shop"), commit="c2")
    job, _ = world.jobs.create(live, job_id="00000000-0000-4000-8000-00000000000c", commit="c2")
    with pytest.raises(ConflictError, match=job.job_id):
        reconcile(world.stores, REPO, repair=True, submit=world.submit)


def test_an_uploaded_archive_source_must_be_given_again() -> None:
    world = World()
    world.vectors.delete_files(REPO, ["shop/price.py"])
    archive = JobRequest(REPO, JobSource(SourceKind.ARCHIVE, "upload.tar.gz"), commit="c3")
    job, _ = world.jobs.create(archive, job_id="00000000-0000-4000-8000-00000000000d", commit="c3")
    world.jobs.start(job.job_id, Stage.INGEST, "c3")
    world.jobs.finish(job.job_id, JobStatus.DONE)
    with pytest.raises(InvalidInputError, match="archive"):
        reconcile(world.stores, REPO, repair=True, submit=world.submit)
