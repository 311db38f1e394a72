"""The stage graph, declared once: ingest -> chunk -> embed -> write -> graph -> commit ->
webhook.

This table is where a reader follows one job through Quarry. Each :class:`Stage` names
its Celery task (a stable name: messages in flight and dead letters carry it), the
queue it runs on, the message it consumes, the stages it hands work to, its retry
policy, what fails with it when it fails for good, and the pipeline function that does
its work. The names themselves live in config.queues (every process agrees on them);
this table ties each to its place in the flow. ``tasks/`` registers one thin Celery
shim per stage under ``Stage.task``; the pipeline functions hand work on by naming a
stage of this table (``CHUNK.task``), never a task-name string of their own.

::

    POST /v1/jobs ──▶ INGEST ──▶ CHUNK (batches of files) ──▶ EMBED (one message per file)
                        │  ▲ a large job: INGEST_MORE sends the next bounded slice, when
                        │  ┆ the job's files in flight leave room (fair sharing: settling
                        │  ┆ files in CHUNK or WRITE release it, see RELEASES)
                        │          │ files the embedding cache holds whole go to WRITE
                        │          │ with those vectors, skipping EMBED
                        │          │ files with no chunks,       │ shared device batches
                        │          │ skipped or failed settle    ▼
                        │          └──────────────┐           WRITE (one file's rows)
                        │ nothing changed         ▼              │ the last file settled:
                        └───────────────────▶ GRAPH ◀────────────┘ its task plans the graph
                                                 │ the first batch of waiting file graphs
                                                 ▼
                                              GRAPH_FILES (resolve and write a batch; then
                                                 │ the next, one after another)
                                                 │ the batch that leaves none waiting runs
                                                 ▼ the commit in its own task
                                              COMMIT (publish, finish)
                                                 │
                                                 ▼
                                              WEBHOOK (job.done / job.failed / ...)

The sweeper (``SWEEP``) is not a stage of a job: the cpu workers ask for it on a timer,
and it sends a stalled job's INGEST or GRAPH again (pipeline.stages.recovery), and a
stalled repository deletion's ``DELETE_REPO`` (pipeline.stages.deletion).

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from config import queues


class Retry(enum.StrEnum):
    """How a stage's failures are retried (tasks/base.py and the stage shims apply it)."""

    # Breaker open: wait for the breaker and try again, never dropped. Other transient
    # errors: backoff with jitter, ``write_max_retries`` attempts, then a dead letter.
    # Permanent errors: a dead letter at once.
    STAGE = "stage"
    # As STAGE, per buffered message: each message of a failed device batch is sent
    # again on its own with its attempt raised.
    PER_MESSAGE = "per-message"
    # Timeouts, connection errors, 429 and 5xx: backoff (pipeline/webhooks/retries.py),
    # ``webhook_max_attempts`` in all, then a dead letter; a 4xx or a refused address is
    # a dead letter at once. Every attempt is logged on the job.
    DELIVERY = "delivery"


class FailsWith(enum.StrEnum):
    """What a stage's message that failed for good takes down with it."""

    JOB = "job"  # the job fails with the reason
    FILES = "files"  # the batch's files fail (the job then fails at its commit)
    FILE = "file"  # the message's one file fails
    NOTHING = "nothing"  # an undelivered webhook: logged on the job, kept as a dead letter


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of the graph; see the module docstring."""

    name: str
    task: str
    queue: str
    consumes: str
    sends: tuple[str, ...]
    retry: Retry
    fails: FailsWith
    use_case: str


INGEST: Final = Stage(
    name="ingest",
    task=queues.INGEST_JOB_TASK,
    queue=queues.INGEST,
    consumes="job_id",
    sends=("ingest-more", "chunk", "graph"),
    retry=Retry.STAGE,
    fails=FailsWith.JOB,
    use_case="pipeline.stages.ingest.ingest",
)
# The rest of a large job's files, a bounded slice at a time (no checkout needed: the
# ingest stored every file's bytes; the files to send are read back from the snapshot).
INGEST_MORE: Final = Stage(
    name="ingest-more",
    task=queues.INGEST_MORE_TASK,
    queue=queues.INGEST,
    consumes="job_id, after: the last path sent",
    sends=("ingest-more", "chunk"),
    retry=Retry.STAGE,
    fails=FailsWith.JOB,
    use_case="pipeline.stages.ingest.ingest_more",
)
CHUNK: Final = Stage(
    name="chunk",
    task=queues.CHUNK_FILES_TASK,
    queue=queues.CHUNK,
    consumes="job_id, repo, root, snapshot_id, files: a batch of one job's file versions",
    # write: the files whose every chunk the embedding cache holds (skipping embed)
    sends=("embed", "write", "graph"),
    retry=Retry.STAGE,
    fails=FailsWith.FILES,
    use_case="pipeline.stages.chunk.chunk_files",
)
EMBED: Final = Stage(
    name="embed",
    task=queues.EMBED_CHUNKS_TASK,
    queue=queues.EMBED,
    consumes="message: one file version's chunks (pipeline.messages.FileChunks)",
    sends=("write",),
    retry=Retry.PER_MESSAGE,
    fails=FailsWith.FILE,
    use_case="pipeline.stages.embed.embed_messages",
)
WRITE: Final = Stage(
    name="write",
    task=queues.WRITE_CHUNKS_TASK,
    queue=queues.WRITE,
    consumes="message: one file version's chunks with their vectors and model id",
    sends=("graph",),
    retry=Retry.STAGE,
    fails=FailsWith.FILE,
    use_case="pipeline.stages.write.write_file",
)
# Bounded at any repository size: each batch takes the next waiting graphs and looks up
# only the symbols its files' calls name; one job's batches run one after another.
# The plan runs in the task that settles the job's last file (pipeline.stages.indexing
# .maybe_start_graph), one hop fewer; this task is what the sweeper sends to recover a
# job that stalled before its graph stage.
GRAPH: Final = Stage(
    name="graph",
    task=queues.GRAPH_PLAN_TASK,
    queue=queues.WRITE,
    consumes="job_id",
    sends=("graph-files", "commit"),  # the first batch, or the commit when none waits
    retry=Retry.STAGE,
    fails=FailsWith.JOB,
    use_case="pipeline.stages.indexing.plan_graph",
)
GRAPH_FILES: Final = Stage(
    name="graph-files",
    task=queues.GRAPH_FILES_TASK,
    queue=queues.WRITE,
    consumes="job_id: its next graph_task_files waiting file graphs are the batch",
    # commit: the batch that leaves none waiting runs it in the same task (the COMMIT
    # task is what the plan sends when no graph waits, and what tests and tools send)
    sends=("graph-files", "commit"),
    retry=Retry.STAGE,
    fails=FailsWith.JOB,
    use_case="pipeline.stages.graph.write_graph_files",
)
COMMIT: Final = Stage(
    name="commit",
    task=queues.COMMIT_JOB_TASK,
    queue=queues.WRITE,
    consumes="job_id",
    sends=("webhook",),
    retry=Retry.STAGE,
    fails=FailsWith.JOB,
    use_case="pipeline.stages.commit.commit_job",
)
WEBHOOK: Final = Stage(
    name="webhook",
    task=queues.WEBHOOK_DELIVER_TASK,
    queue=queues.WEBHOOK,
    consumes="job_id, event, delivery_id, attempt",
    sends=(),
    retry=Retry.DELIVERY,
    fails=FailsWith.NOTHING,
    use_case="pipeline.webhooks.events.build_event",
)

# Fair sharing (pipeline.stages.window): a job has at most ``job_window_files`` files in
# flight, so other tenants' messages wait behind at most that much of it in every queue.
# The stages where files settle release the job's next slice when room is made: the one
# hand-off that goes back up the graph, and only ever to INGEST_MORE.
RELEASES: Final[dict[str, tuple[str, ...]]] = {
    "ingest": ("ingest-more",),  # unreadable files settle at ingest
    "chunk": ("ingest-more",),  # files with no chunks, skipped or failed
    "write": ("ingest-more",),  # written or failed files
}

STAGES: Final[tuple[Stage, ...]] = (
    INGEST,
    INGEST_MORE,
    CHUNK,
    EMBED,
    WRITE,
    GRAPH,
    GRAPH_FILES,
    COMMIT,
    WEBHOOK,
)

# Maintenance, not a stage of a job: sends stalled jobs on (pipeline.stages.recovery).
SWEEP_TASK: Final = queues.SWEEP_JOBS_TASK
# Not a stage of a job either: removes one repository in bounded batches, on the write
# queue (pipeline.stages.deletion.run_deletion); DELETE /v1/repos/{name} sends it, the
# sweep sends it again when a deletion stalls. Transient errors are retried as STAGE's;
# a permanent one fails the deletion.
DELETE_REPO_TASK: Final = queues.DELETE_REPO_TASK
# Not a stage of a job either: the rows a small job wrote go into the HNSW index
# (migration 0021) a bounded batch at a time, on the write queue; the commit offers a
# start after each job, the sweep while rows still wait (pipeline/stages/vector_index.py).
# Until then, search finds them by an exact scan: the job is done without the index.
INDEX_VECTORS_TASK: Final = queues.INDEX_VECTORS_TASK
# A model switch's backfill steps and the old model's drop (tasks/models.py).
MODEL_BACKFILL_TASK: Final = queues.MODEL_BACKFILL_TASK
MODEL_RETIRE_TASK: Final = queues.MODEL_RETIRE_TASK
DELETE_REPO_QUEUE: Final = queues.WRITE


def stage(name: str) -> Stage:
    """The stage called ``name``; a KeyError names an unknown one."""
    for candidate in STAGES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no stage {name!r} (stages: {', '.join(s.name for s in STAGES)})")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Messages a stage hands to its successor: the stage and one kwargs map each."""

    stage: Stage
    messages: tuple[dict[str, object], ...]
