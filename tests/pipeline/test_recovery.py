"""The job sweeper on fakes: which jobs are stalled and how each is sent on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from config.queues import CHUNK_FILES_TASK, INGEST_JOB_TASK, INGEST_MORE_TASK
from pipeline import flow
from pipeline.adapters.fakes.blob_store import InMemoryBlobStore
from pipeline.adapters.fakes.in_flight import InMemoryInFlight
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.source_fetcher import InMemorySourceFetcher
from pipeline.analysis.inventory import take_inventory
from pipeline.jobs import RECOVERIES, JobRequest, JobSource, JobStatus, SourceKind, Stage, StoreWait
from pipeline.models import FileVersion, RepoRef
from pipeline.sources.blobs import Reader, local_reader
from pipeline.stages import ingest as ingest_stage
from pipeline.stages.indexing import SETTLED, JobContext
from pipeline.stages.ingest import IngestOptions, IngestOutcome, ingest, ingest_more
from pipeline.stages.recovery import Action, sweep

IDLE_S = 120.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self) -> None:
        self.clock = Clock(1_000_000.0)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = InMemoryInFlight()
        self.ctx = JobContext(
            InMemoryJobStore(clock=self.clock),
            InMemorySnapshotStore(),
            InMemoryJobBoard(clock=self.clock),
            self._send,
            clock=self.clock,
        )

    def _send(self, task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        self.sent.extend((task, dict(k)) for k in kwargs)

    def job(self, n: int, *, start: bool = True, **counters: int) -> str:
        request = JobRequest(
            RepoRef("t1", f"repo{n}"), JobSource(SourceKind.PATH, "/src"), commit=f"c{n}"
        )
        job, _ = self.ctx.jobs.create(
            request, job_id=f"00000000-0000-4000-8000-{n:012d}", commit=None
        )
        if start:
            assert self.ctx.jobs.start(job.job_id, Stage.CHUNK, f"c{n}")
        if counters:
            self.ctx.board.set_counters(
                job.job_id, {k.replace("_", "."): v for k, v in counters.items()}
            )
        return job.job_id

    def sweep(self) -> list[tuple[str, Action]]:
        found = sweep(self.ctx, self.in_flight, idle_s=IDLE_S, max_recoveries=2)
        return [(r.job_id, r.action) for r in found]


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_a_job_idle_for_less_than_the_stall_time_is_left_alone(h: Harness) -> None:
    h.job(1, files_todo=3)
    h.clock.now += IDLE_S - 1
    assert h.sweep() == []
    assert h.sent == []


def test_a_job_whose_message_the_broker_holds_is_left_alone(h: Harness) -> None:
    job_id = h.job(1, files_todo=3)
    h.in_flight.hold(job_id.upper())  # ids compare without case
    h.clock.now += IDLE_S + 1
    assert h.sweep() == []


def test_a_job_waiting_on_a_store_or_cancelled_is_left_alone(h: Harness) -> None:
    waiting, cancelled = h.job(1, files_todo=3), h.job(2, files_todo=3)
    h.clock.now += IDLE_S + 1
    h.ctx.board.wait_on(waiting, StoreWait("postgres", h.clock.now + 30, "breaker open"))
    h.ctx.board.cancel(cancelled)
    assert h.sweep() == []


def test_a_stalled_queued_job_gets_its_ingest_again(h: Harness) -> None:
    job_id = h.job(1, start=False)
    h.clock.now += IDLE_S + 1
    assert h.sweep() == [(job_id, Action.INGEST)]
    assert h.sent == [(INGEST_JOB_TASK, {"job_id": job_id})]
    job = h.ctx.jobs.get(job_id)
    assert job is not None and job.counters[RECOVERIES] == 1
    assert "sweeper: no work in flight" in job.errors[-1].message
    assert "not listed yet" in job.errors[-1].message
    # The record was touched: it is not idle again before another stall time.
    h.clock.now += IDLE_S - 1
    assert h.sweep() == []


def test_a_stalled_job_with_unsettled_files_gets_its_ingest_again(h: Harness) -> None:
    job_id = h.job(1, files_todo=3)
    h.ctx.board.mark(job_id, SETTLED, ["a.py", "b.py"])
    h.clock.now += IDLE_S + 1
    assert h.sweep() == [(job_id, Action.INGEST)]
    assert h.sent == [(INGEST_JOB_TASK, {"job_id": job_id})]
    job = h.ctx.jobs.get(job_id)
    assert job is not None and "1 files left" in job.errors[-1].message


def test_a_stalled_job_whose_files_all_settled_gets_its_graph_stage_again(h: Harness) -> None:
    job_id = h.job(1, files_todo=2, commit_sent=1)
    h.ctx.board.mark(job_id, SETTLED, ["a.py", "b.py"])
    h.clock.now += IDLE_S + 1
    assert h.sweep() == [(job_id, Action.GRAPH)]
    assert h.sent == [(flow.GRAPH.task, {"job_id": job_id})]


def test_a_job_that_stalls_again_after_the_most_recoveries_fails_with_the_reason(
    h: Harness,
) -> None:
    job_id = h.job(1, files_todo=2)
    for _ in range(2):
        h.clock.now += IDLE_S + 1
        assert h.sweep() == [(job_id, Action.INGEST)]
    h.clock.now += IDLE_S + 1
    assert h.sweep() == [(job_id, Action.FAIL)]
    job = h.ctx.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.message.startswith("stalled again after 2 recoveries")
    h.clock.now += IDLE_S + 1
    assert h.sweep() == []  # a failed job is never a candidate
    assert [task for task, _ in h.sent] == [INGEST_JOB_TASK, INGEST_JOB_TASK]


def test_nothing_idle_reads_no_broker(h: Harness) -> None:
    class Refusing(InMemoryInFlight):
        def job_ids(self) -> set[str]:
            raise AssertionError("the broker is read only when a job is idle")

    h.in_flight = Refusing()
    h.job(1, files_todo=1)
    assert h.sweep() == []


def test_ingest_run_again_sends_only_the_files_not_settled_yet(h: Harness, tmp_path: Path) -> None:
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_text(f"def {name[0]}():\n    return 1\n")
    fetcher = InMemorySourceFetcher({"/src": tmp_path})
    job_id = h.job(1, start=False)
    options = IngestOptions(max_file_bytes=1_000_000, batch_max_files=1)
    blobs = InMemoryBlobStore()
    outcome = ingest(
        h.ctx, job_id, fetcher=fetcher, blobs=blobs, workdir=tmp_path / "w1", options=options
    )
    assert outcome is IngestOutcome.ENQUEUED
    first = [k["files"][0]["path"] for t, k in h.sent if t == CHUNK_FILES_TASK]
    assert sorted(first) == ["a.py", "b.py", "c.py"]
    h.sent.clear()
    h.ctx.board.mark(job_id, SETTLED, ["a.py", "c.py"])
    ingest(h.ctx, job_id, fetcher=fetcher, blobs=blobs, workdir=tmp_path / "w2", options=options)
    again = [k["files"][0]["path"] for t, k in h.sent if t == CHUNK_FILES_TASK]
    assert again == ["b.py"]
    assert h.ctx.board.counters(job_id)["files.todo"] == 3


def test_ingest_stores_the_bytes_the_chunk_stage_reads_on_any_host(
    h: Harness, tmp_path: Path
) -> None:
    """The chunk messages name no folder: the files' bytes are in the blob store, once
    per distinct content; a file changed after listing fails at ingest, naming why."""
    (tmp_path / "a.py").write_text("def a():\n    return 1\n")
    (tmp_path / "same.py").write_text("def a():\n    return 1\n")
    (tmp_path / "b.py").write_text("def b():\n    return 2\n")
    fetcher = InMemorySourceFetcher({"/src": tmp_path})
    job_id = h.job(1, start=False)
    blobs = InMemoryBlobStore()
    listed = take_inventory(tmp_path).files
    by_path = {f.path: f for f in listed}

    def changing_reader(root: Path) -> Reader:
        def read(files: Sequence[FileVersion]) -> dict[str, bytes | Exception]:
            (tmp_path / "b.py").write_text("def b():\n    return 3\n")  # edited meanwhile
            return local_reader(root)(files)

        return read

    options = IngestOptions(max_file_bytes=1_000_000)
    with mock.patch("pipeline.stages.ingest.local_reader", changing_reader):
        outcome = ingest(
            h.ctx, job_id, fetcher=fetcher, blobs=blobs, workdir=tmp_path / "w", options=options
        )
    assert outcome is IngestOutcome.ENQUEUED
    (message,) = [k for t, k in h.sent if t == CHUNK_FILES_TASK]
    assert "root" not in message
    assert sorted(f["path"] for f in message["files"]) == ["a.py", "same.py"]
    stored = blobs.get_many([by_path["a.py"].sha256, by_path["b.py"].sha256])
    assert stored == {by_path["a.py"].sha256: b"def a():\n    return 1\n"}
    job = h.ctx.jobs.get(job_id)
    assert job is not None
    assert [(e.path, e.message) for e in job.errors] == [
        ("b.py", "changed while the job was running")
    ]
    assert h.ctx.board.members(job_id, "files.failed") == {"b.py"}


def test_a_large_job_is_sent_a_bounded_slice_at_a_time(h: Harness, tmp_path: Path) -> None:
    """No call sends more than slice_files files; INGEST_MORE sends the rest from the
    snapshot (no checkout), each file exactly once, skipping what has settled."""
    for n in range(23):
        (tmp_path / f"m{n:02d}.py").write_text(f"def f{n}():\n    return {n}\n")
    fetcher = InMemorySourceFetcher({"/src": tmp_path})
    job_id = h.job(1, start=False)
    options = IngestOptions(max_file_bytes=1_000_000, batch_max_files=4, slice_files=10)
    blobs = InMemoryBlobStore()
    ingest(h.ctx, job_id, fetcher=fetcher, blobs=blobs, workdir=tmp_path / "w", options=options)
    sent: list[str] = []
    rounds = 0
    while True:
        chunked = [f["path"] for t, k in h.sent if t == CHUNK_FILES_TASK for f in k["files"]]
        more = [k for t, k in h.sent if t == INGEST_MORE_TASK]
        assert len(chunked) <= 10, chunked
        sent += chunked
        h.sent.clear()
        if rounds == 1:  # a file of the next slice settled meanwhile (a recovery did it)
            h.ctx.board.mark(job_id, SETTLED, ["m21.py"])
        if not more:
            break
        (message,) = more
        ingest_more(h.ctx, job_id, message["after"], options=options)
        rounds += 1
    assert rounds == 2
    assert sent == sorted(f"m{n:02d}.py" for n in range(23) if n != 21)


def test_a_slice_reads_the_snapshot_a_page_at_a_time_and_sends_only_changed_unsettled_files(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ingest_more is bounded by the slice: pages of the snapshot from ``after`` on, the
    searchable versions of those paths only, settled files skipped."""
    monkeypatch.setattr(ingest_stage, "SNAPSHOT_PAGE", 2)
    repo = RepoRef("t1", "repo1")
    before = [FileVersion(f"m{n:02d}.py", f"{n:064x}", "python", 10) for n in range(20)]
    changed = {3, 4, 9, 10, 11, 17}
    now = [
        FileVersion(f.path, f"{n + 100:064x}", "python", 10) if n in changed else f
        for n, f in enumerate(before)
    ]
    h.ctx.snapshots.publish(repo, h.ctx.snapshots.begin(repo, "c0", before))
    job_id = h.job(1)
    h.ctx.jobs.set_snapshot(job_id, h.ctx.snapshots.begin(repo, "c1", now))
    h.ctx.board.mark(job_id, SETTLED, ["m10.py"])
    asked: list[int] = []
    original = h.ctx.snapshots.searchable_versions

    def spy(repo: RepoRef, paths: Any, ref: str | None = None, *, or_default: bool) -> Any:
        assert (ref, or_default) == ("main", True)  # the job's ref, else the default's
        asked.append(len(paths))
        return original(repo, paths, ref, or_default=or_default)

    monkeypatch.setattr(h.ctx.snapshots, "searchable_versions", spy)
    # The base was published by no job here, which reads as chunked by chunker version 1
    # (every file would be chunked again): it is taken as made by today's chunker.
    monkeypatch.setattr(
        h.ctx.snapshots, "chunker_version", lambda *_a, **_k: ingest_stage.CHUNKER_VERSION
    )
    options = IngestOptions(max_file_bytes=1_000_000, batch_max_files=2, slice_files=2)
    sent, after = [], ""
    for _ in range(10):
        h.sent.clear()
        ingest_more(h.ctx, job_id, after, options=options)
        sent += [f["path"] for t, k in h.sent if t == CHUNK_FILES_TASK for f in k["files"]]
        more = [k["after"] for t, k in h.sent if t == INGEST_MORE_TASK]
        if not more:
            break
        (after,) = more
    assert sent == ["m03.py", "m04.py", "m09.py", "m11.py", "m17.py"]
    assert max(asked) == 2  # never the whole repository
