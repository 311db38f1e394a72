"""The graph stage in bounded tasks, on fakes: batches resolve exactly as the whole
commit would, the plan pages through any number of waiting graphs, the last batch sends
the commit, and redelivery changes nothing."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pipeline import flow
from pipeline.adapters.fakes.graph_store import InMemoryGraphStore
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.analysis.resolution import resolve_across_files
from pipeline.errors import StoreUnavailableError
from pipeline.jobs import JobRequest, JobSource, JobStatus, SourceKind, Stage
from pipeline.models import (
    Edge,
    EdgeKind,
    FileExtraction,
    FileGraph,
    FileVersion,
    RepoRef,
    Span,
    Symbol,
    SymbolKind,
)
from pipeline.stages.commit import commit_job
from pipeline.stages.graph import (
    kept_symbols,
    pack_graph,
    resolve_batch,
    unpack_graph,
    write_graph_files,
)
from pipeline.stages.indexing import JobContext, plan_graph

REPO = RepoRef("t1", "shop")
JOB = "00000000-0000-4000-8000-000000000001"
SPAN = Span(1, 1, 0, 0)
KINDS = [SymbolKind.FUNCTION, SymbolKind.METHOD, SymbolKind.CLASS, SymbolKind.MODULE]


class Harness:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.jobs = InMemoryJobStore()
        self.snapshots = InMemorySnapshotStore(jobs=self.jobs)
        self.graph = InMemoryGraphStore()
        self.ctx = JobContext(self.jobs, self.snapshots, InMemoryJobBoard(), self._send)

    def _send(self, task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        self.sent.extend((task, dict(k)) for k in kwargs)

    def job(self, graphs: Sequence[FileGraph]) -> int:
        """A running job whose chunk stage kept ``graphs`` (and listed their files)."""
        request = JobRequest(REPO, JobSource(SourceKind.PATH, "/src"), commit="c1")
        self.jobs.create(request, job_id=JOB, commit=None)
        assert self.jobs.start(JOB, Stage.CHUNK, "c1")
        snapshot_id = self.snapshots.begin(REPO, "c1", [g.file for g in graphs])
        self.jobs.set_snapshot(JOB, snapshot_id)
        self.stage(graphs)
        return snapshot_id

    def stage(self, graphs: Sequence[FileGraph]) -> None:
        """What the chunk stage does with a batch's graphs."""
        self.snapshots.put_symbols(REPO, kept_symbols({g.file.path: g for g in graphs}))
        self.snapshots.stage_graphs(JOB, {g.file.path: pack_graph(JOB, REPO, g) for g in graphs})

    def take(self, stage: flow.Stage) -> list[dict[str, Any]]:
        mine = [kwargs for task, kwargs in self.sent if task == stage.task]
        self.sent = [(task, kwargs) for task, kwargs in self.sent if task != stage.task]
        return mine


def _repository(seed: int, files: int) -> list[FileGraph]:
    """A generated repository: few distinct names (so most are ambiguous somewhere),
    imports between files, unresolved calls and bases, and duplicate definitions."""
    rng = random.Random(seed)
    names = [f"n{i}" for i in range(max(3, files // 2))]
    paths = [f"pkg/m{i:03d}.py" for i in range(files)]
    graphs = []
    for path in paths:
        module = path[:-3].replace("/", ".")
        symbols = tuple(
            Symbol(name, f"{module}.{name}.{k}", rng.choice(KINDS), path, SPAN)
            for k, name in enumerate(rng.sample(names, rng.randint(0, min(4, len(names)))))
        )
        symbols += symbols[:1] if rng.random() < 0.1 else ()  # a duplicate definition
        edges = [
            Edge(EdgeKind.IMPORTS, module, target, True, path)
            for target in rng.sample(paths, rng.randint(0, min(3, len(paths))))
        ]
        caller = symbols[0].qualified_name if symbols else module
        for _ in range(rng.randint(0, 6)):
            kind = rng.choice([EdgeKind.CALLS, EdgeKind.CALLS, EdgeKind.INHERITS])
            target = rng.choice([*names, "missing"])
            target = rng.choice([target, f"obj.{target}", f"ns::{target}<T>"])
            edges.append(Edge(kind, caller, target, False, path))
        edges.append(Edge(EdgeKind.CALLS, module, f"{module}.x", True, path))
        extraction = FileExtraction(path, "python", module, symbols, tuple(edges))
        file = FileVersion(path, f"{len(graphs):064x}", "python", 10)
        graphs.append(FileGraph(file, extraction, ()))
    return graphs


@pytest.mark.parametrize("seed", range(12))
def test_a_batch_resolves_exactly_as_the_whole_commit_does(seed: int) -> None:
    h = Harness()
    graphs = _repository(seed, files=40)
    snapshot_id = h.job(graphs)
    whole = resolve_across_files([g.extraction for g in graphs])
    rng = random.Random(seed)
    order = list(range(len(graphs)))
    rng.shuffle(order)
    size = rng.randint(1, 9)
    for start in range(0, len(order), size):
        batch = [graphs[i] for i in order[start : start + size]]
        resolved = resolve_batch(h.ctx, snapshot_id, batch)
        assert [g.extraction for g in resolved] == [whole[i] for i in order[start : start + size]]
    resolved_somewhere = sum(e.resolved for x in whole for e in x.edges if e.kind is EdgeKind.CALLS)
    assert resolved_somewhere > len(graphs)  # the generated calls do resolve, some of them


def test_a_batch_reads_the_candidates_of_its_own_names_only() -> None:
    h = Harness()
    graphs = _repository(7, files=60)
    snapshot_id = h.job(graphs)
    asked: list[frozenset[str]] = []
    original = h.snapshots.symbol_candidates

    def spy(snapshot_id: int, names: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(frozenset(names))
        return original(snapshot_id, names, *args, **kwargs)

    h.snapshots.symbol_candidates = spy  # type: ignore[method-assign]
    resolve_batch(h.ctx, snapshot_id, graphs[:1])
    used = {
        e.target.replace("::", ".").rsplit(".", 1)[-1].split("<", 1)[0]
        for e in graphs[0].extraction.edges
        if not e.resolved and e.kind in (EdgeKind.CALLS, EdgeKind.INHERITS)
    }
    assert asked == ([frozenset(used)] if used else [])


def test_batches_run_one_after_another_and_the_last_sends_the_commit() -> None:
    h = Harness()
    graphs = _repository(3, files=50)
    h.job(graphs)
    assert plan_graph(h.ctx, JOB) == 1
    assert h.jobs.get(JOB).stage == Stage.GRAPH  # type: ignore[union-attr]
    assert h.take(flow.GRAPH_FILES) == [{"job_id": JOB}]
    written = []
    for _ in range(20):
        written.append(write_graph_files(h.ctx, JOB, graph=h.graph, batch_files=4))
        if h.take(flow.COMMIT):
            break
        assert h.take(flow.GRAPH_FILES) == [{"job_id": JOB}]  # the next batch, and only it
    assert written == [4] * 12 + [2]
    assert h.sent == [] and h.snapshots.staged_paths(JOB) == []
    assert set(h.graph.file_versions(REPO)) == {g.file.path for g in graphs}
    # The oracle: every graph resolved against the whole commit, written at once.
    whole = resolve_across_files([g.extraction for g in graphs])
    oracle = InMemoryGraphStore()
    oracle.write_files(
        REPO, [FileGraph(g.file, x, g.chunks) for g, x in zip(graphs, whole, strict=True)]
    )
    assert h.graph.node_ids(REPO) == oracle.node_ids(REPO)
    assert h.graph.edges(REPO) == oracle.edges(REPO)
    assert any(kind == "CALLS" for kind, _, _ in oracle.edges(REPO))


def test_a_redelivered_batch_or_plan_does_nothing_twice() -> None:
    h = Harness()
    graphs = _repository(4, files=10)
    h.job(graphs)
    plan_graph(h.ctx, JOB)
    h.take(flow.GRAPH_FILES)
    assert write_graph_files(h.ctx, JOB, graph=h.graph, batch_files=6) == 6
    assert h.take(flow.GRAPH_FILES) == [{"job_id": JOB}]
    nodes = h.graph.node_ids(REPO)
    plan_graph(h.ctx, JOB)  # the sweeper's recovery: only what still waits
    assert h.take(flow.GRAPH_FILES) == [{"job_id": JOB}]
    assert write_graph_files(h.ctx, JOB, graph=h.graph, batch_files=6) == 4
    assert h.take(flow.COMMIT) == [{"job_id": JOB}]
    assert write_graph_files(h.ctx, JOB, graph=h.graph, batch_files=6) == 0  # redelivered
    assert h.take(flow.COMMIT) == [{"job_id": JOB}]  # the commit again: idempotent
    assert h.graph.node_ids(REPO) > nodes
    assert commit_job(h.ctx, JOB, vectors=_NoVectors(), graph=h.graph) is JobStatus.DONE
    # The job's rows go into the vector index after it is done (0021): one step sent.
    assert [task for task, _ in h.sent] == [flow.INDEX_VECTORS_TASK]
    assert commit_job(h.ctx, JOB, vectors=_NoVectors(), graph=h.graph) is None
    assert [task for task, _ in h.sent] == [flow.INDEX_VECTORS_TASK]
    assert h.snapshots.staged_paths(JOB) == []


def test_a_job_with_nothing_to_graph_goes_straight_to_its_commit() -> None:
    h = Harness()
    h.job([])
    assert plan_graph(h.ctx, JOB) == 0
    assert h.sent == [(flow.COMMIT.task, {"job_id": JOB})]


def test_a_job_with_failed_files_skips_the_graph_and_fails_at_commit() -> None:
    h = Harness()
    h.job(_repository(5, files=3))
    h.ctx.board.mark(JOB, "files.failed", ["pkg/m000.py"])
    assert plan_graph(h.ctx, JOB) == 0
    assert h.sent == [(flow.COMMIT.task, {"job_id": JOB})]
    assert commit_job(h.ctx, JOB, vectors=_NoVectors(), graph=h.graph) is JobStatus.FAILED
    assert h.snapshots.staged_paths(JOB) == []  # dropped when the job ended
    assert h.graph.file_versions(REPO) == {}


def test_a_commit_while_graphs_still_wait_publishes_nothing() -> None:
    h = Harness()
    h.job(_repository(6, files=3))
    assert commit_job(h.ctx, JOB, vectors=_NoVectors(), graph=h.graph) is None
    assert h.snapshots.searchable_files(REPO) == {}
    assert h.jobs.get(JOB).status is JobStatus.RUNNING  # type: ignore[union-attr]


def test_a_cancelled_job_writes_no_graph() -> None:
    h = Harness()
    h.job(_repository(8, files=5))
    h.ctx.board.cancel(JOB)
    assert plan_graph(h.ctx, JOB) == 0
    assert write_graph_files(h.ctx, JOB, graph=h.graph, batch_files=2) == 0
    assert h.sent == [] and h.graph.file_versions(REPO) == {}


def test_a_waiting_graph_round_trips_compressed() -> None:
    graph = _repository(9, files=2)[1]
    packed = pack_graph(JOB, REPO, graph)
    assert unpack_graph(packed) == graph
    assert len(packed) < len(repr(graph))


class _NoVectors:
    def retain_versions(self, repo: RepoRef, current: Mapping[str, str]) -> int:
        return 0


def test_the_task_that_writes_the_last_batch_runs_the_commit_it_is_given() -> None:
    """The worker passes the commit to the graph-files task: the last batch commits in
    the same task (no COMMIT message); a commit that fails transiently is sent as its
    own COMMIT task (its own retries), and a redelivered batch commits again."""
    h = Harness()
    h.job(_repository(5, files=10))
    plan_graph(h.ctx, JOB)
    h.take(flow.GRAPH_FILES)
    committed: list[JobStatus | None] = []
    down = [True]

    def commit() -> None:
        if down[0]:
            raise StoreUnavailableError("postgres", "connection refused")
        committed.append(commit_job(h.ctx, JOB, vectors=_NoVectors(), graph=h.graph))

    assert write_graph_files(h.ctx, JOB, graph=h.graph, batch_files=6, commit=commit) == 6
    assert committed == [] and h.take(flow.GRAPH_FILES) == [{"job_id": JOB}]
    assert write_graph_files(h.ctx, JOB, graph=h.graph, batch_files=6, commit=commit) == 4
    assert committed == [] and h.take(flow.COMMIT) == [{"job_id": JOB}]
    down[0] = False
    assert write_graph_files(h.ctx, JOB, graph=h.graph, batch_files=6, commit=commit) == 0
    assert committed == [JobStatus.DONE]
    assert h.take(flow.COMMIT) == [] and h.jobs.get(JOB).status is JobStatus.DONE  # type: ignore[union-attr]
