"""The chunk worker's file path on fakes, for the bad-input tests: the chunking options
and token counter it runs with, an in-memory job to account files to, and the stage run
over a whole tree.

Must not import: anything but the product's pure modules and in-memory fakes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.adapters.fakes.job_board import InMemoryJobBoard
from pipeline.adapters.fakes.job_store import InMemoryJobStore
from pipeline.adapters.fakes.snapshot_store import InMemorySnapshotStore
from pipeline.analysis.chunking import ChunkingOptions
from pipeline.analysis.inventory import take_inventory
from pipeline.analysis.tokens import CharBoundTokenCounter
from pipeline.jobs import JobRequest, JobSource, SourceKind, Stage
from pipeline.models import RepoRef
from pipeline.sources.blobs import local_reader
from pipeline.stages.chunk import chunk_files
from pipeline.stages.indexing import JobContext

# A parse past 2 s falls back to line windows: well inside the example deadline.
OPTIONS = ChunkingOptions(parse_timeout_s=2.0)
COUNTER = CharBoundTokenCounter()
REPO = RepoRef("default", "hostile")


def storable(text: str, what: str) -> None:
    """PostgreSQL text and the JSON of the job messages: UTF-8, no NUL."""
    text.encode("utf-8")  # a lone surrogate raises here
    assert "\x00" not in text, f"{what} holds NUL"


def write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fake_context(sent: list[tuple[str, list[dict[str, Any]]]]) -> tuple[JobContext, str]:
    """A context on fakes with one started job (its id); what is sent lands in ``sent``."""

    def send(task: str, kwargs: Sequence[Mapping[str, Any]]) -> None:
        payload = [dict(k) for k in kwargs]
        json.dumps(payload)  # what Celery's JSON serializer does with it
        sent.append((task, payload))

    ctx = JobContext(InMemoryJobStore(), InMemorySnapshotStore(), InMemoryJobBoard(), send)
    request = JobRequest(REPO, JobSource(SourceKind.PATH, "/x"), commit="c1")
    job, _ = ctx.jobs.create(request, job_id="00000000-0000-4000-8000-00000000000a", commit="c1")
    assert ctx.jobs.start(job.job_id, Stage.INGEST, "c1")
    return ctx, job.job_id


def chunk_all(root: Path) -> dict[str, int]:
    """Run the chunk stage on fakes over the tree's listed files; its counters."""
    files = take_inventory(root).files
    ctx, job_id = fake_context([])
    ctx.board.set_counters(job_id, {"files.todo": len(files)})
    chunk_files(
        ctx,
        job_id,
        REPO,
        files,
        read=local_reader(root),
        options=OPTIONS,
        counter=COUNTER,
        repo_paths=lambda: None,
    )
    return ctx.board.counters(job_id)
