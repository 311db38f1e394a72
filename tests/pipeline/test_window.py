"""Fair sharing: a job's window of files in flight (pipeline.stages.window), on fakes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from config.queues import CHUNK_FILES_TASK, INGEST_MORE_TASK
from pipeline.adapters.fakes.blob_store import InMemoryBlobStore
from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.adapters.fakes.source_fetcher import InMemorySourceFetcher
from pipeline.jobs import JobRequest, JobSource, SourceKind
from pipeline.models import RepoRef
from pipeline.stages import window
from pipeline.stages.indexing import JobContext, live_job, settle
from pipeline.stages.ingest import IngestOptions, ingest, ingest_more


class Harness:
    def __init__(self, tmp_path: Path, files: int) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.ctx = JobContext(
            InMemoryJobStore(), InMemorySnapshotStore(), InMemoryJobBoard(), self._send
        )
        self.tree = tmp_path / "src"
        self.tree.mkdir()
        for n in range(files):
            (self.tree / f"m{n:03d}.py").write_text(f"def f{n}():\n    return {n}\n")
        request = JobRequest(RepoRef("t1", "big"), JobSource(SourceKind.PATH, "/src"))
        self.job_id = self.ctx.jobs.create(
            request, job_id="00000000-0000-4000-8000-000000000001", commit=None
        )[0].job_id
        self.workdir = tmp_path / "w"

    def _send(self, task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        self.sent.extend((task, dict(k)) for k in kwargs)

    def take(self, task: str) -> list[dict[str, Any]]:
        found = [k for t, k in self.sent if t == task]
        self.sent = [(t, k) for t, k in self.sent if t != task]
        return found

    def ingest(self, options: IngestOptions) -> None:
        fetcher = InMemorySourceFetcher({"/src": self.tree})
        ingest(
            self.ctx,
            self.job_id,
            fetcher=fetcher,
            blobs=InMemoryBlobStore(),
            workdir=self.workdir,
            options=options,
        )


def _paths(batches: list[dict[str, Any]]) -> list[str]:
    return [f["path"] for batch in batches for f in batch["files"]]


def test_a_job_never_has_more_than_its_window_in_flight_and_every_file_goes_once(
    tmp_path: Path,
) -> None:
    """The next slice goes only when settled files leave room for it; each file is sent
    exactly once and the job's status does not show the window's bookkeeping."""
    h = Harness(tmp_path, 50)
    options = IngestOptions(max_file_bytes=1_000_000, batch_max_files=4, window_files=10)
    h.ingest(options)
    in_flight: list[str] = []
    sent: list[str] = []
    for _ in range(100):
        for more in h.take(INGEST_MORE_TASK):
            ingest_more(h.ctx, h.job_id, more["after"], options=options, run=more["run"])
        new = _paths(h.take(CHUNK_FILES_TASK))
        in_flight += new
        sent += new
        assert len(in_flight) <= 10, in_flight
        if not in_flight:
            break
        settle(h.ctx, h.job_id, "files.written", in_flight[:3])  # a few files settle
        in_flight = in_flight[3:]
    assert sent == sorted(p.name for p in h.tree.iterdir())
    job = h.ctx.jobs.get(h.job_id)
    assert job is not None
    shown = live_job(h.ctx, job).counters
    assert shown["files.written"] == 50
    assert not [k for k in shown if k.startswith("window.")]


def test_the_first_slice_and_the_next_go_at_once_then_the_job_waits_for_room(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, 30)
    options = IngestOptions(max_file_bytes=1_000_000, batch_max_files=4, window_files=10)
    h.ingest(options)
    assert len(_paths(h.take(CHUNK_FILES_TASK))) == 5  # half the window
    (more,) = h.take(INGEST_MORE_TASK)  # room for a second slice at once
    ingest_more(h.ctx, h.job_id, more["after"], options=options, run=more["run"])
    assert len(_paths(h.take(CHUNK_FILES_TASK))) == 5
    assert h.take(INGEST_MORE_TASK) == []  # 10 in flight: the third slice waits
    settle(h.ctx, h.job_id, "files.written", ["m000.py", "m001.py", "m002.py", "m003.py"])
    assert h.take(INGEST_MORE_TASK) == []  # 6 in flight + 5 > 10
    settle(h.ctx, h.job_id, "files.written", ["m004.py"])
    assert len(h.take(INGEST_MORE_TASK)) == 1


def test_a_released_slice_is_sent_once_however_many_files_settle_at_once(
    tmp_path: Path,
) -> None:
    """Marking the slice released is the claim: settles racing for it send it once, and
    a settle replayed later sends nothing more."""
    h = Harness(tmp_path, 30)
    options = IngestOptions(max_file_bytes=1_000_000, batch_max_files=4, window_files=10)
    h.ingest(options)
    (more,) = h.take(INGEST_MORE_TASK)
    ingest_more(h.ctx, h.job_id, more["after"], options=options, run=more["run"])
    paths = _paths(h.take(CHUNK_FILES_TASK))
    for path in paths:  # every file settles, each in its own call, some twice
        settle(h.ctx, h.job_id, "files.written", [path])
        settle(h.ctx, h.job_id, "files.written", [path])
    assert len(h.take(INGEST_MORE_TASK)) == 1


def test_a_recovered_ingest_holds_new_slices_so_a_lost_release_is_not_lost_for_good(
    tmp_path: Path,
) -> None:
    """The INGEST_MORE of a released slice was lost (its worker died after the claim): the
    sweeper's new ingest run sends the unsettled files again and holds slices of its own."""
    h = Harness(tmp_path, 30)
    options = IngestOptions(max_file_bytes=1_000_000, batch_max_files=4, window_files=10)
    h.ingest(options)
    first = _paths(h.take(CHUNK_FILES_TASK))
    h.take(INGEST_MORE_TASK)  # lost
    settle(h.ctx, h.job_id, "files.written", first)
    h.sent.clear()
    h.ingest(options)  # the recovery
    again = _paths(h.take(CHUNK_FILES_TASK))
    assert again and not set(again) & set(first)
    (more,) = h.take(INGEST_MORE_TASK)
    assert more["run"]


@pytest.mark.parametrize(
    ("slice_files", "window_files", "expected"),
    [(10_000, 0, 10_000), (10_000, 256, 128), (50, 256, 50), (10_000, 1, 1)],
)
def test_a_slice_is_half_the_window_at_most(
    slice_files: int, window_files: int, expected: int
) -> None:
    assert window.slice_size(slice_files, window_files) == expected
